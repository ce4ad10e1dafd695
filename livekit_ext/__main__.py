"""``python -m livekit_ext doctor | demo``."""

from __future__ import annotations

import argparse
import sys

import livekit_ext

from . import _compat


def doctor() -> int:
    """Print the installed versions and what each feature is, and why."""
    for name, version in _compat.installed_versions().items():
        print(f"{name} {version or 'not installed'}")
    print(f"supported: {_compat.SUPPORTED}")
    if (problem := _compat.range_problem()) is not None:
        print(f"warning: {problem}")
    for feature, state in livekit_ext.status().items():
        print(f"{feature}: {state} ({state.reason})")
    return 0


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
