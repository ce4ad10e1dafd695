#!/usr/bin/env python3
"""Check what the features *do* on every livekit-agents release of the range, not only that
the names they touch exist (that is ``scripts/sweep.py``).

    python3 scripts/behaviour_sweep.py                     # every release from MIN_RELEASE on
    python3 scripts/behaviour_sweep.py --sample            # the CI sample (below)
    python3 scripts/behaviour_sweep.py --releases 1.5.3 1.6.5

Each release gets a venv, ``.sweep-venvs/lk-<release>`` (a complete ``.matrix/lk-<release>``
is used instead when there is one), with livekit-agents, livekit-plugins-openai and
livekit-plugins-google pinned to the release, this package (editable), pytest,
pytest-asyncio, cryptography and syrupy. A venv is kept and reused while the install it got
still matches. In it run:

- ``pytest -m sweep tests/test_behaviour_smoke.py``: one short wire check per column
  (identity over OpenAI and over Gemini, Azure nulls at connect and mid-session for no
  api-version, a GA and a preview one, one bad frame survived over OpenAI and over Gemini);
- ``scripts/import_orders.py --sample 4``: the ``imports`` column (``n/a`` while the script is
  not there).

It prints a release x check table: ``ok``; ``FAIL``; ``n/a`` where the check does not apply
(the feature reports itself unsupported there, with its reason, or the release lacks what the
check drives). Reasons and logs follow the table (logs in ``.sweep-venvs/logs/``), then
``behaviour sweep: N/M releases ok``. Exit status 1 when a check failed, 2 when the index or a
venv could not be set up.

The sample (``--sample``, what CI runs): the matrix (``scripts/matrix.py``) runs the whole suite
on the last release of every minor (1.4.6, 1.5.17, 1.6.10, 1.7.1, 1.8.9), so the sample takes
the first and the last release of every minor that the matrix does not run (today 1.5.0,
1.6.0, 1.7.0, 1.8.0: each last one is a matrix release, and 1.4.6 is the first and the last of
1.4 in range), and the releases in ``BEHAVIOUR_CHANGES``, where upstream's behaviour changed
mid-minor in a way a feature had to follow (the first release of each such span). The first
release of a minor is where upstream's changes of that minor land together; the last is the
one users stay on.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import matrix  # noqa: E402  (a sibling script: the releases the matrix runs)
import sweep  # noqa: E402  (a sibling script: the index and the range)

SMOKE = "tests/test_behaviour_smoke.py"
IMPORT_ORDERS = ROOT / "scripts" / "import_orders.py"
DISTS = ("livekit-agents", "livekit-plugins-openai", "livekit-plugins-google")
TOOLS = ("pytest>=8", "pytest-asyncio>=0.23", "cryptography>=41", "syrupy>=4.6")
STAMP = "livekit-ext-sweep.json"
SMOKE_TIMEOUT = 300.0
IMPORT_ORDERS_TIMEOUT = 300.0

BEHAVIOUR_CHANGES = {
    "1.5.1": "1.5.1..1.5.6: a session diffs update_options against its model's options, "
    "which the model has already updated (azure_explicit_nulls rewinds them)",
}
"""Releases the sample adds: where upstream changed, mid-minor, what a feature works around."""

# (column, test-name prefix in the smoke); a column holds when every test it matches held
COLUMNS = (
    ("id openai", "test_identity_openai"),
    ("id gemini", "test_identity_gemini"),
    ("azure v1", "test_azure_nulls[v1"),
    ("azure GA", "test_azure_nulls[ga"),
    ("azure preview", "test_azure_nulls[preview"),
    ("bad frame openai", "test_bad_frame_openai"),
    ("bad frame gemini", "test_bad_frame_gemini"),
)
IMPORTS = "imports"


@dataclass
class Cell:
    state: str  # "ok" | "FAIL" | "n/a"
    reason: str = ""


@dataclass
class Result:
    release: str
    cells: dict[str, Cell] = field(default_factory=dict)
    venv: str = ""
    log: Path | None = None
    setup_error: str = ""
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.setup_error and all(c.state != "FAIL" for c in self.cells.values())


# -- which releases --------------------------------------------------------------------------


def releases_in_range() -> list[str]:
    """Every final livekit-agents release from the package's lower bound on."""
    low = sweep.parse_version(sweep.lower_bound(ROOT / "livekit_ext" / "_compat.py"))
    assert low is not None
    versions = sweep.index_versions("livekit-agents")
    return sorted((v for v in versions if sweep.version_key(v) >= low), key=sweep.version_key)


def sample(releases: list[str], matrix_releases: tuple[str, ...]) -> list[str]:
    """First and last release of every minor, less the matrix's, plus ``BEHAVIOUR_CHANGES``."""
    minors: dict[tuple[int, ...], list[str]] = {}
    for release in releases:
        minors.setdefault(sweep.version_key(release)[:2], []).append(release)
    chosen = {r for rs in minors.values() for r in (rs[0], rs[-1])} - set(matrix_releases)
    chosen |= set(BEHAVIOUR_CHANGES) & set(releases)
    return sorted(chosen, key=sweep.version_key)


# -- venvs -----------------------------------------------------------------------------------


def requirements(release: str) -> list[str]:
    return ["-e", str(ROOT), *(f"{dist}=={release}" for dist in DISTS), *TOOLS]


def stamp_of(release: str) -> dict[str, str]:
    """What a venv was set up with; a venv whose stamp differs is installed again."""
    pyproject = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    return {"requirements": " ".join(requirements(release)), "pyproject": pyproject}


def matrix_venv(release: str) -> Path | None:
    """``.matrix/lk-<release>`` when it is complete (never installed into: the matrix's own)."""
    python = ROOT / ".matrix" / f"lk-{release}" / "bin" / "python"
    if not python.exists():
        return None
    probe = (
        "import importlib.metadata as m, sys, pytest, pytest_asyncio, cryptography, syrupy, "
        "livekit_ext; "
        f"sys.exit(any(m.version(d) != {release!r} for d in {DISTS!r}))"
    )
    done = subprocess.run([str(python), "-c", probe], capture_output=True, cwd=ROOT)
    return python if done.returncode == 0 else None


def ensure_venv(release: str, root: Path, log: Path) -> Path:
    """The python of a venv with ``release`` installed; raises with pip's output if it fails."""
    reused = matrix_venv(release)
    if reused is not None:
        return reused
    venv = root / f"lk-{release}"
    python = venv / "bin" / "python"
    stamp_file = venv / STAMP
    wanted = stamp_of(release)
    if stamp_file.exists() and python.exists():
        try:
            if json.loads(stamp_file.read_text()) == wanted:
                return python
        except ValueError:
            pass
    with log.open("a") as out:
        if not python.exists():
            run_logged([sys.executable, "-m", "venv", str(venv)], out)
        stamp_file.unlink(missing_ok=True)
        # no byte-compiling of every installed file: the checks compile what they import,
        # once per release (check_env)
        command = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        run_logged([*command, "--no-compile", *requirements(release)], out)
    stamp_file.write_text(json.dumps(wanted))
    return python


def check_env(release: str, venvs: Path) -> dict[str, str]:
    """The checks' environment: byte code cached per release outside the repository.

    Each release's checks start five interpreters (the smoke, four import orders) that import
    the same modules; with ``PYTHONDONTWRITEBYTECODE`` (CI sets it) each would compile them
    again. The prefix keeps the repository free of ``__pycache__`` all the same.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(venvs / "pycache" / f"lk-{release}")
    return env


def run_logged(
    command: list[str],
    out: IO[str],
    timeout: float | None = None,
    env: dict[str, str] | None = None,
) -> None:
    """Run ``command``, its output appended to the log; raise when it fails."""
    out.write(f"$ {' '.join(command)}\n")
    out.flush()
    done = subprocess.run(
        command,
        stdout=out,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        timeout=timeout,
        check=False,
        env=env,
    )
    if done.returncode != 0:
        raise RuntimeError(f"exit {done.returncode}: {' '.join(command[:4])} ...")


# -- the checks ------------------------------------------------------------------------------


def first_line(text: str | None, limit: int = 160) -> str:
    """The first non-empty line, cut to ``limit`` characters (reprs of wire events are long)."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    line = lines[0] if lines else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def smoke_cells(junit: Path, log: Path) -> dict[str, Cell]:
    """One cell per column from pytest's junit report."""
    outcomes: list[tuple[str, Cell]] = []
    try:
        suite = ET.parse(junit).getroot()
    except (OSError, ET.ParseError) as error:
        broken = Cell("FAIL", f"no pytest report ({error}); see {log}")
        return {column: broken for column, _ in COLUMNS}
    for case in suite.iter("testcase"):
        name = case.get("name", "")
        failed = case.find("failure")
        if failed is None:
            failed = case.find("error")
        skipped = case.find("skipped")
        if failed is not None:
            outcomes.append((name, Cell("FAIL", first_line(failed.get("message")))))
        elif skipped is not None:
            outcomes.append((name, Cell("n/a", first_line(skipped.get("message")))))
        else:
            outcomes.append((name, Cell("ok")))
    cells: dict[str, Cell] = {}
    for column, prefix in COLUMNS:
        mine = [cell for name, cell in outcomes if name.startswith(prefix)]
        failures = [c for c in mine if c.state == "FAIL"]
        if not mine:
            # a module that did not import reports one error, under the module's name
            errors = [c for name, c in outcomes if c.state == "FAIL" and "[" not in name]
            reason = errors[0].reason if errors else "the smoke ran no such test"
            cells[column] = Cell("FAIL", f"{reason}; see {log}")
        elif failures:
            cells[column] = Cell("FAIL", f"{failures[0].reason}; see {log}")
        elif all(c.state == "n/a" for c in mine):
            cells[column] = mine[0]
        else:
            cells[column] = Cell("ok")
    return cells


def run_smoke(python: Path, log: Path, env: dict[str, str]) -> dict[str, Cell]:
    with tempfile.TemporaryDirectory() as scratch:
        junit = Path(scratch) / "smoke.xml"
        command = [
            str(python),
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-m",
            "sweep",
            SMOKE,
            f"--junitxml={junit}",
        ]
        with log.open("a") as out:
            try:
                run_logged(command, out, timeout=SMOKE_TIMEOUT, env=env)
            except RuntimeError:
                pass  # failures are read from the report
            except subprocess.TimeoutExpired:
                return {
                    c: Cell("FAIL", f"timed out after {SMOKE_TIMEOUT:.0f}s") for c, _ in COLUMNS
                }
        return smoke_cells(junit, log)


def run_import_orders(python: Path, log: Path, env: dict[str, str]) -> Cell:
    if not IMPORT_ORDERS.exists():
        return Cell("n/a", f"{IMPORT_ORDERS.relative_to(ROOT)} is not there yet")
    command = [str(python), str(IMPORT_ORDERS), "--sample", "4"]
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=IMPORT_ORDERS_TIMEOUT,
            env=env,
        )
    except subprocess.TimeoutExpired:
        return Cell("FAIL", f"timed out after {IMPORT_ORDERS_TIMEOUT:.0f}s")
    with log.open("a") as out:
        out.write(f"$ {' '.join(command)}\n{done.stdout}{done.stderr}")
    lines = done.stdout.strip().splitlines()
    last = lines[-1] if lines else first_line(done.stderr)
    return Cell("ok") if done.returncode == 0 else Cell("FAIL", f"{last}; see {log}")


# -- one release -----------------------------------------------------------------------------


class Slots:
    """How many venvs are set up at once (mostly I/O) and how many checks run (CPU)."""

    def __init__(self, setups: int, checks: int) -> None:
        self.setup = threading.Semaphore(setups)
        self.check = threading.Semaphore(checks)


def sweep_release(release: str, venvs: Path, slots: Slots) -> Result:
    result = Result(release)
    logs = venvs / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    result.log = log = logs / f"lk-{release}.log"
    log.write_text(f"behaviour sweep of livekit-agents {release}\n")
    started = time.monotonic()
    with slots.setup:
        try:
            python = ensure_venv(release, venvs, log)
        except (RuntimeError, OSError, subprocess.SubprocessError) as error:
            result.setup_error = f"venv: {error}; see {log}"
            return result
    result.venv = os.path.relpath(python.parent.parent, ROOT)
    result.seconds["venv"] = time.monotonic() - started
    env = check_env(release, venvs)
    with slots.check:
        started = time.monotonic()
        result.cells.update(run_smoke(python, log, env))
        result.seconds["smoke"] = time.monotonic() - started
        started = time.monotonic()
        result.cells[IMPORTS] = run_import_orders(python, log, env)
        result.seconds["imports"] = time.monotonic() - started
    verdict = "ok" if result.ok else "FAIL"
    print(f"  {release}: {verdict} ({timings(result)}; {result.venv})", flush=True)
    return result


def timings(result: Result) -> str:
    return ", ".join(f"{k} {v:.0f}s" for k, v in result.seconds.items())


# -- the report ------------------------------------------------------------------------------


def print_report(results: list[Result]) -> None:
    header = ["release", *(c for c, _ in COLUMNS), IMPORTS]
    rows = [header]
    for r in results:
        if r.setup_error:
            rows.append([r.release, *(["-"] * (len(header) - 1))])
        else:
            rows.append([r.release, *(r.cells[c].state for c in header[1:])])
    print()
    sweep.print_table(rows)
    notes = []
    for r in results:
        if r.setup_error:
            notes.append(f"  {r.release}: {r.setup_error}")
        for column in header[1:]:
            cell = r.cells.get(column)
            if cell is not None and cell.state != "ok":
                notes.append(f"  {r.release} {column}: {cell.state}: {cell.reason}")
    if notes:
        print("\nnot ok:")
        print("\n".join(notes))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--sample", action="store_true", help="the CI sample (see the docstring)")
    which.add_argument("--releases", nargs="+", help="only these livekit-agents releases")
    parser.add_argument("--venvs", default=str(ROOT / ".sweep-venvs"), help="venv cache")
    parser.add_argument("--setup-jobs", type=int, default=4, help="venvs set up at once")
    parser.add_argument("--jobs", type=int, default=2, help="releases checked at once")
    args = parser.parse_args()
    started = time.monotonic()

    try:
        available = releases_in_range()
    except RuntimeError as error:
        print(error, file=sys.stderr)
        return 2
    if args.releases:
        unknown = sorted(set(args.releases) - set(available))
        if unknown:
            print(f"not in the range on the index: {', '.join(unknown)}", file=sys.stderr)
            return 2
        releases = sorted(set(args.releases), key=sweep.version_key)
    elif args.sample:
        releases = sample(available, matrix.RELEASES)
    else:
        releases = available
    print(f"behaviour sweep: {len(releases)} releases ({', '.join(releases)})", flush=True)

    venvs = Path(args.venvs)
    slots = Slots(max(1, args.setup_jobs), max(1, args.jobs))
    with ThreadPoolExecutor(max_workers=max(1, args.setup_jobs, args.jobs)) as pool:
        results = list(pool.map(lambda r: sweep_release(r, venvs, slots), releases))

    print_report(results)
    ok = sum(r.ok for r in results)
    print(f"\nelapsed: {time.monotonic() - started:.0f} s")
    print(f"behaviour sweep: {ok}/{len(results)} releases ok")
    if any(r.setup_error for r in results):
        return 2
    return 0 if ok == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
