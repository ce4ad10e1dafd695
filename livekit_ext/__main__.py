"""``python -m livekit_ext doctor | demo``."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Mapping

import livekit_ext

from . import _compat
from ._engine import NOT_INSTALLED

PLUGIN_MODULES: Mapping[str, str] = {
    "livekit-plugins-openai": "livekit.plugins.openai",
    "livekit-plugins-google": "livekit.plugins.google",
}
LIVE_KEYS: Mapping[str, str] = {"openai": "OPENAI_API_KEY", "gemini": "GOOGLE_API_KEY"}
"""The demo's providers and the environment variable ``--live`` reads for each."""


def doctor() -> int:
    """Print livekit-ext's version, the installed versions and what each feature is, and why.

    Imports livekit-agents and every installed plugin first, as an agent would, so each
    status is the one its sessions get (in any import order: see ``_imports``). A feature of
    a plugin that is not installed is not needed. Exits 1 when a feature that the installed
    packages need is unsupported.
    """
    print(f"livekit-ext {livekit_ext.__version__}")
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
        print(doctor_line(feature, state))
        failed = failed or (state.state == "unsupported" and not_needed(state) is None)
    return 1 if failed else 0


def not_needed(state: livekit_ext.FeatureStatus) -> str | None:
    """The distribution whose absence makes the feature moot, if that is why it is off."""
    if state.state != "unsupported" or not state.reason.endswith(NOT_INSTALLED):
        return None
    return state.reason.removesuffix(NOT_INSTALLED)


def doctor_line(feature: str, state: livekit_ext.FeatureStatus) -> str:
    """``feature: state (reason)``; a feature of a plugin that is not installed is not needed."""
    if (dist := not_needed(state)) is not None:
        return f"{feature}: not needed ({dist} is not installed)"
    return f"{feature}: {state} ({state.reason})"


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m livekit_ext",
        description="livekit-ext: per-utterance transcript identity, Azure GA fixes and "
        "parallel STT for livekit-agents.",
    )
    parser.add_argument("--version", action="version", version=livekit_ext.__version__)
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", help="with no command: this help"
    )
    commands.add_parser(
        "doctor",
        help="what an agent importing the installed plugins gets, feature by feature "
        "(exit 1 when a needed feature is unsupported)",
    )
    demo = commands.add_parser(
        "demo",
        help="a realtime model and a parallel STT hear one recorded call, over a loopback "
        "server (no keys, no network)",
    )
    demo.add_argument(
        "--provider",
        choices=list(LIVE_KEYS),
        default="openai",
        help="the realtime model: OpenAI Realtime or Gemini Live (default: openai)",
    )
    demo.add_argument(
        "--live",
        action="store_true",
        help="talk to the real service instead of the loopback server; needs "
        + " or ".join(f"{key} (--provider {name})" for name, key in LIVE_KEYS.items()),
    )
    demo.add_argument(
        "--trace",
        action="store_true",
        help="record LiveKit's OpenTelemetry spans of the call (in memory) and print their "
        "tree, with the utterance attributes livekit_ext puts on them",
    )
    demo.add_argument(
        "--json",
        action="store_true",
        help="stdout carries only the outcome as one JSON line, for CI (the story goes to stderr)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    cli = parser()
    args = cli.parse_args(argv)
    if args.command is None:
        cli.print_help()
        return 0
    if args.command == "doctor":
        return doctor()
    from ._extras import MissingExtra
    from .demo.run import run_demo

    try:
        return run_demo(provider=args.provider, live=args.live, as_json=args.json, trace=args.trace)
    except MissingExtra as missing:  # one line that says what to install, no traceback
        print(missing, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
