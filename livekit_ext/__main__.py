"""``python -m livekit_ext doctor | demo``."""

from __future__ import annotations

import argparse
import importlib
import sys

import livekit_ext

from . import _compat

PLUGIN_MODULES = {
    "livekit-plugins-openai": "livekit.plugins.openai",
    "livekit-plugins-google": "livekit.plugins.google",
}


def doctor() -> int:
    """Print the installed versions and what each feature is, and why.

    Imports livekit-agents and every installed plugin first (an agent would), so each status
    is the one its sessions get. Exits 1 when a feature that the installed packages need is
    unsupported.
    """
    versions = _compat.installed_versions()
    for name, version in versions.items():
        print(f"{name} {version or 'not installed'}")
    print(
        f"supported: livekit-agents>={_compat.MIN_RELEASE} "
        f"(tested: {', '.join(_compat.TESTED_RELEASES)})"
    )
    for dist, module in PLUGIN_MODULES.items():
        if versions.get(dist) is not None:
            try:
                importlib.import_module(module)
            except ImportError as e:
                print(f"warning: {dist} is installed but {module} does not import: {e}")
    if (warning := _compat.verdict().warning) is not None:
        print(f"warning: {warning}")
    failed = False
    for feature, state in livekit_ext.status().items():
        print(f"{feature}: {state} ({state.reason})")
        needed = "is not installed" not in state.reason and state.state == "unsupported"
        failed = failed or needed
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m livekit_ext")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("doctor", help="installed versions and feature status")
    demo = commands.add_parser("demo", help="realtime model + parallel STT over a loopback server")
    demo.add_argument("--provider", choices=["openai", "gemini"], default="openai")
    demo.add_argument("--live", action="store_true", help="talk to the real service (needs keys)")
    args = parser.parse_args(argv)
    if args.command == "doctor":
        return doctor()
    from ._extras import MissingExtra
    from .demo.run import run_demo

    try:
        return run_demo(provider=args.provider, live=args.live)
    except MissingExtra as missing:  # one line that says what to install, no traceback
        print(missing, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
