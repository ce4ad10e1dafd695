#!/usr/bin/env python3
"""Run the whole test suite on every supported livekit-agents release, each in its own venv.

    python scripts/matrix.py                 # all releases, venvs under .matrix/
    python scripts/matrix.py 1.4.6 1.8.9     # some releases
    python scripts/matrix.py --venv-root /work/venvs --venv-prefix v   # reuse existing venvs

Each venv gets livekit-agents and the realtime plugins the suite drives (OpenAI, Google, xAI,
Ultravox, Phonic; Azure Voice Live from 1.8) pinned to the release, plus this package
(editable, with its test extra); the next release's venv is installed while the tests of one
run. Each release runs the suite, then the typing tests and all 24 import orders
(``scripts/import_orders.py``). Exit status is non-zero when any release fails, and when
pytest collected no test (its exit code 5).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RELEASES = ("1.4.6", "1.5.17", "1.6.10", "1.7.1", "1.8.9")


# the realtime plugins the suite drives; each is released in lockstep with livekit-agents
DISTRIBUTIONS = (
    "livekit-agents",
    "livekit-plugins-openai",
    "livekit-plugins-google",
    "livekit-plugins-xai",
    "livekit-plugins-ultravox",
    "livekit-plugins-phonic",
)


def pinned(release: str) -> list[str]:
    pins = [f"{dist}=={release}" for dist in DISTRIBUTIONS]
    if tuple(int(n) for n in release.split(".")[:2]) >= (1, 8):
        pins.append(f"livekit-plugins-azure[realtime]=={release}")  # Voice Live: 1.8 on
    return pins


def ensure_venv(venv: Path, release: str) -> Path:
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    install = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "-e",
            f"{ROOT}[test]",
            *pinned(release),
        ],
        capture_output=True,  # it runs while another release's tests print
        text=True,
    )
    if install.returncode != 0:
        raise RuntimeError(f"pip install for {release} failed:\n{install.stderr}")
    return python


def run_release(release: str, python: Path, pytest_args: str) -> tuple[str, int, float]:
    """The suite, then the typing tests and all 24 import orders, in ``python``'s venv."""
    print(f"== livekit-agents {release}: {python.parent.parent}", flush=True)
    started = time.monotonic()
    code = subprocess.run(
        [str(python), "-m", "pytest", *pytest_args.split()],
        cwd=ROOT,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    ).returncode
    elapsed = time.monotonic() - started
    if code == 0:  # the typing pattern against this release's own type hints; all 24
        # import orders (the suite runs a sample)
        code = subprocess.run(
            [str(python), "-m", "pytest", "-m", "typing or import_orders", *pytest_args.split()],
            cwd=ROOT,
        ).returncode
    if code == 5:
        print(f"!! livekit-agents {release}: pytest collected no test", flush=True)
    return release, code, elapsed


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("releases", nargs="*", default=list(RELEASES))
    parser.add_argument("--venv-root", default=str(ROOT / ".matrix"))
    parser.add_argument("--venv-prefix", default="lk-")
    parser.add_argument("--pytest-args", default="-q -p no:cacheprovider -n 2")
    args = parser.parse_args()

    results: list[tuple[str, int, float]] = []
    # the next release's venv is installed while this one's tests run (pip waits on the
    # network and the disk, the tests on the CPU): ~1 minute less a release
    with ThreadPoolExecutor(1) as installer:
        venvs = {
            release: installer.submit(
                ensure_venv, Path(args.venv_root) / f"{args.venv_prefix}{release}", release
            )
            for release in args.releases
        }
        for release in args.releases:
            results.append(run_release(release, venvs[release].result(), args.pytest_args))
    print("\nversion matrix:")
    for release, code, elapsed in results:
        print(
            f"  livekit-agents {release}: {'ok' if code == 0 else f'FAILED (exit {code})'} in {elapsed:.1f}s"
        )
    failed = [r for r, code, _ in results if code != 0]
    print(f"matrix: {len(results) - len(failed)}/{len(results)} releases passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
