#!/usr/bin/env python3
"""Patch parity: each series under ``patches/<base>/`` applies to upstream and holds the suite.

    python scripts/check_patches.py              # every base that has patches/<base>/series
    python scripts/check_patches.py 1.8.9        # one base
    python scripts/check_patches.py --keep-going # check every base even after a failure

For each base (a livekit-agents release) this

1. downloads the sdists of livekit-agents, livekit-plugins-openai and livekit-plugins-google
   pinned to the base from PyPI (the wheel where no sdist exists, with a pyproject made from
   its metadata), and lays them out as upstream's repository does (``livekit-agents/...``,
   ``livekit-plugins/livekit-plugins-openai/...``) in a git repository under
   ``.patch-check/<base>/upstream``;
2. ``git apply --check`` then ``git apply`` each patch named in ``series``, in order; a patch
   that does not apply fails the base with the patch, file and hunk named;
3. installs the patched packages and this project (test extra) into a fresh venv
   ``.patch-check/<base>/venv``;
4. checks each patch's own tests (the files it adds under ``tests/``): they pass with the
   series applied, and fail on the tree just before the patch (its tests copied there);
5. runs the tests the series adds to upstream's ``tests/`` together, then this project's whole
   suite and snapshots with ``LIVEKIT_EXT_DISABLE=1`` (the extension applies nothing:
   upstream's patched code alone must behave), printing the counts, and checks that
   ``livekit_ext.status()``, with the extension applied, reports every feature the series
   covers as ``native`` (every feature's state is printed).

The features a patch covers are named after ``#`` on its line in ``series``. The last line
printed is ``patch parity: N/M bases (...)``; the exit status is 0 only when every base held.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.parser import Parser
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PATCHES = ROOT / "patches"
WORK = ROOT / ".patch-check"
BASES = ("1.8.9", "1.5.17")
"""The bases CI checks, in this order; any other ``patches/<base>/series`` is checked after."""

# distribution -> its directory in upstream's repository
LAYOUT: dict[str, str] = {
    "livekit-agents": "livekit-agents",
    "livekit-plugins-openai": "livekit-plugins/livekit-plugins-openai",
    "livekit-plugins-google": "livekit-plugins/livekit-plugins-google",
}

# Tests of features that no patch covers yet. They exercise what only the extension does
# today, so they cannot hold on upstream with the series applied; they are deselected only
# while the series of a base does not cover the feature (a series line "# <feature>").
# Shape: {"feature": ("tests/...",)}. Empty: every upstream-able feature has its patch on both
# bases (the Gemini stop without voiceActivity is transcript_identity's, 0010; the utterance on
# LiveKit's spans is utterance_traces', 0011). A new feature's tests go here until its patch
# exists.
UNCOVERED_FEATURE_TESTS: dict[str, tuple[str, ...]] = {}

# Features the series leaves out on purpose: the extension's own business, not upstream's.
EXTENSION_ONLY = {"job_processes": "imports livekit_ext in each job process (the extension's)"}


GIT_IDENTITY = (
    "-c",
    "user.name=livekit-ext patch check",
    "-c",
    "user.email=patch-check@livekit-ext.invalid",
    "-c",
    "commit.gpgsign=false",
)
# a fixed date makes the pristine commit (and so every check) reproducible
GIT_DATE = "2000-01-01T00:00:00+0000"


class CheckFailed(Exception):
    """One base failed; the message says where."""


@dataclass(frozen=True)
class SeriesEntry:
    patch: Path
    features: tuple[str, ...]


@dataclass
class BaseResult:
    base: str
    ok: bool = False
    detail: str = ""
    timings: dict[str, float] = field(default_factory=dict)


def log(message: str) -> None:
    print(message, flush=True)


def run(
    cmd: Sequence[str | Path],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    capture: bool = False,
    check: bool = True,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [str(c) for c in cmd],
        cwd=cwd,
        env=env,
        input=stdin,
        text=True,
        stdout=subprocess.PIPE if capture else None,
        stderr=subprocess.STDOUT if capture else None,
    )
    if check and proc.returncode != 0:
        output = f"\n{proc.stdout}" if capture and proc.stdout else ""
        raise CheckFailed(f"`{' '.join(str(c) for c in cmd)}` exited {proc.returncode}{output}")
    return proc


# -- series --------------------------------------------------------------------------------


def series_bases() -> list[str]:
    others = sorted(p.parent.name for p in PATCHES.glob("*/series") if p.parent.name not in BASES)
    return [base for base in BASES if (PATCHES / base / "series").is_file()] + others


def read_series(base: str, name: str = "series") -> list[SeriesEntry]:
    """``series``: one patch file name a line, in order; ``# feature ...`` after it."""
    entries: list[SeriesEntry] = []
    directory = PATCHES / base
    if not (directory / name).is_file():
        raise CheckFailed(f"there is no patches/{base}/{name}")
    for number, raw in enumerate((directory / name).read_text().splitlines(), start=1):
        listed, _, comment = raw.partition("#")
        if not listed.strip():
            continue
        patch = directory / listed.strip()
        if not patch.is_file():
            raise CheckFailed(f"patches/{base}/{name} line {number}: {patch.name} does not exist")
        entries.append(SeriesEntry(patch, tuple(comment.replace(",", " ").split())))
    if not entries:
        raise CheckFailed(f"patches/{base}/{name} names no patch")
    return entries


# -- upstream tree -------------------------------------------------------------------------


def download(pip: Sequence[str | Path], base: str, dest: Path) -> dict[str, Path]:
    """The sdist of each distribution pinned to ``base``, or its wheel where PyPI has none."""
    found = _archives(dest, base)
    missing = [dist for dist in LAYOUT if dist not in found]
    if missing:
        dest.mkdir(parents=True, exist_ok=True)
        pins = [f"{dist}=={base}" for dist in missing]
        quiet = ["-q", "--disable-pip-version-check", "--no-deps", "-d", dest]
        if run([*pip, "download", *quiet, "--no-binary", ":all:", *pins], check=False).returncode:
            for pin in pins:  # one by one: some may have an sdist, others only wheels
                if run(
                    [*pip, "download", *quiet, "--no-binary", ":all:", pin], check=False
                ).returncode:
                    run([*pip, "download", *quiet, "--only-binary", ":all:", pin])
        found = _archives(dest, base)
    if missing := [dist for dist in LAYOUT if dist not in found]:
        raise CheckFailed(f"could not download {', '.join(missing)} {base} from PyPI")
    return found


def _archives(directory: Path, base: str) -> dict[str, Path]:
    found: dict[str, Path] = {}
    if not directory.is_dir():
        return found
    for dist in LAYOUT:
        stem = dist.replace("-", "_")
        for candidate in (f"{stem}-{base}.tar.gz", f"{stem}-{base}-py3-none-any.whl"):
            if (directory / candidate).is_file():
                found[dist] = directory / candidate
                break
    return found


def lay_out(archives: dict[str, Path], tree: Path) -> None:
    """Unpack each archive into its upstream directory, with a pyproject that installs it."""
    if tree.exists():
        shutil.rmtree(tree)
    tree.mkdir(parents=True)
    for dist, archive in archives.items():
        target = tree / LAYOUT[dist]
        staging = tree / f".staging-{dist}"
        if archive.name.endswith(".tar.gz"):
            with tarfile.open(archive) as tar:
                tar.extractall(staging, filter="data")
            (top,) = staging.iterdir()  # sdists hold one <name>-<version>/ directory
            target.parent.mkdir(parents=True, exist_ok=True)
            top.rename(target)
            (target / "PKG-INFO").unlink(missing_ok=True)  # generated, not in the repository
        else:
            with zipfile.ZipFile(archive) as wheel:
                wheel.extractall(staging)
            target.mkdir(parents=True)
            for entry in staging.iterdir():
                if entry.name.endswith(".dist-info"):
                    _pyproject_from_wheel(entry, target / "pyproject.toml")
                else:
                    entry.rename(target / entry.name)
        shutil.rmtree(staging)
        if not (target / "pyproject.toml").is_file():
            raise CheckFailed(f"{archive.name} has no pyproject.toml")


def _pyproject_from_wheel(dist_info: Path, dest: Path) -> None:
    """A hatchling pyproject equivalent to the wheel's metadata (for releases with no sdist)."""
    meta = Parser().parsestr((dist_info / "METADATA").read_text())
    requires: list[str] = []
    extras: dict[str, list[str]] = {}
    for requirement in meta.get_all("Requires-Dist") or []:
        spec, _, marker = requirement.partition(";")
        match = re.search(r"""extra\s*==\s*['"]([^'"]+)['"]""", marker)
        if match:
            rest = re.sub(r"""\s*(and\s+)?extra\s*==\s*['"][^'"]+['"]""", "", marker).strip()
            rest = re.sub(r"^and\s+|\s+and$", "", rest).strip()
            extras.setdefault(match.group(1), []).append(
                f"{spec.strip()}; {rest}" if rest else spec.strip()
            )
        else:
            requires.append(requirement.strip())
    lines = [
        "[build-system]",
        'requires = ["hatchling"]',
        'build-backend = "hatchling.build"',
        "",
        "[project]",
        f"name = {json.dumps(meta['Name'])}",
        f"version = {json.dumps(meta['Version'])}",
        f"requires-python = {json.dumps(meta.get('Requires-Python') or '>=3.9')}",
        f"dependencies = {json.dumps(requires)}",
        "",
        "[project.optional-dependencies]",
        *(f"{json.dumps(name)} = {json.dumps(reqs)}" for name, reqs in extras.items()),
        "",
        "[tool.hatch.build.targets.wheel]",
        'packages = ["livekit"]',
        "",
    ]
    dest.write_text("\n".join(lines))


def git(
    tree: Path, *args: str, capture: bool = False, check: bool = True
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GIT_AUTHOR_DATE": GIT_DATE, "GIT_COMMITTER_DATE": GIT_DATE}
    return run(["git", *GIT_IDENTITY, *args], cwd=tree, env=env, capture=capture, check=check)


def pristine_tree(pip: Sequence[str | Path], base: str, tree: Path, downloads: Path) -> None:
    """Upstream ``base`` laid out in ``tree``, committed on branch ``upstream``."""
    lay_out(download(pip, base, downloads), tree)
    git(tree, "init", "-q", "-b", "upstream")
    git(tree, "add", "-A")
    git(tree, "commit", "-q", "-m", f"livekit-agents {base}, laid out from the PyPI releases")


def apply_series(base: str, tree: Path, series: list[SeriesEntry]) -> None:
    for entry in series:
        check = git(tree, "apply", "--check", "-v", str(entry.patch), capture=True, check=False)
        if check.returncode != 0:
            raise CheckFailed(
                f"patches/{base}/{entry.patch.name} does not apply: "
                f"{_where_it_failed(entry.patch, check.stdout)}\n{_indent(check.stdout)}"
            )
        git(tree, "apply", str(entry.patch))
        git(tree, "add", "-A")
        git(tree, "commit", "-q", "-m", entry.patch.name)  # the tree before the next patch
        log(f"   applied {entry.patch.name} ({_size(entry.patch)})")


def _size(patch: Path) -> str:
    """'N files, +A -D' from the patch's diffstat."""
    match = re.search(
        r"(\d+) files? changed(?:, (\d+) insertions?\(\+\))?(?:, (\d+) deletions?\(-\))?",
        patch.read_text(),
    )
    if not match:
        return "no diffstat"
    files, added, deleted = (int(g or 0) for g in match.groups())
    return f"{files} files, +{added} -{deleted}"


def added_tests(patch: Path) -> list[str]:
    """The test modules a patch adds or changes under upstream's ``tests/``."""
    return sorted(set(re.findall(r"^\+\+\+ b/(tests/test_\S+\.py)$", patch.read_text(), re.M)))


def _where_it_failed(patch: Path, output: str) -> str:
    """'<file>, hunk @@ ... @@' from git apply's errors, as precisely as git says."""
    match = re.search(r"error: patch failed: (\S+):(\d+)", output)
    if match:
        path, line = match.group(1), int(match.group(2))
        hunk = _hunk_at(patch, path, line)
        return f"{path}, hunk {hunk}" if hunk else f"{path}, at line {line}"
    match = re.search(r"error: (\S+): (.+)", output)
    if match:
        return f"{match.group(1)}: {match.group(2)}"
    return "see git's output"


def _hunk_at(patch: Path, path: str, line: int) -> str | None:
    current: str | None = None
    for text in patch.read_text().splitlines():
        if text.startswith("+++ "):
            current = text[4:].removeprefix("b/")
        elif text.startswith("@@ ") and current == path:
            match = re.match(r"@@ -(\d+)", text)
            if match and int(match.group(1)) == line:
                return text
    return None


def _indent(text: str) -> str:
    return "\n".join(f"     | {line}" for line in text.rstrip().splitlines())


# -- venv and tests ------------------------------------------------------------------------


def make_venv(venv: Path) -> Path:
    if venv.exists():
        shutil.rmtree(venv)
    run([sys.executable, "-m", "venv", venv])
    return venv / "bin" / "python"


def downloader() -> list[str | Path]:
    """This interpreter's pip, which needs no venv; None where it has none."""
    probe = [sys.executable, "-m", "pip", "--version"]
    if subprocess.run(probe, capture_output=True).returncode == 0:
        return [sys.executable, "-m", "pip"]
    return []


def install(python: Path, tree: Path) -> None:
    """The patched packages (editable: checking a patch's tests against the tree before it is
    a checkout) and this project, resolved together in one pip run."""
    editable = [arg for directory in LAYOUT.values() for arg in ("-e", tree / directory)]
    run(
        [
            python,
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            *editable,
            "-e",
            f"{ROOT}[test]",
        ]
    )


PYTEST_UPSTREAM = ("-q", "-o", "asyncio_mode=auto", "-p", "no:cacheprovider", "-p", "no:randomly")


def check_own_tests(python: Path, tree: Path, series: list[SeriesEntry]) -> list[str]:
    """Each patch's tests pass on the patched tree and fail on the tree just before it.

    The tree is a commit a patch (``apply_series``) and installed editable, so "before" is a
    checkout of the previous commit with the patch's test files copied in. Returns one line a
    patch: how many of its tests ran, and how they failed before it.
    """
    env = {**os.environ, "LIVEKIT_EXT_DISABLE": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    head = git(tree, "rev-parse", "HEAD", capture=True).stdout.strip()
    lines: list[str] = []
    failures: list[str] = []
    try:
        for number, entry in enumerate(series):
            tests = added_tests(entry.patch)
            if not tests:
                failures.append(f"{entry.patch.name} adds no test under tests/")
                continue
            git(tree, "checkout", "-q", head)
            after = _pytest(python, tree, tests, env)
            saved = {t: (tree / t).read_text() for t in tests}
            git(tree, "checkout", "-q", f"{head}~{len(series) - number}")
            for test, text in saved.items():
                (tree / test).parent.mkdir(parents=True, exist_ok=True)
                (tree / test).write_text(text)
            before = _pytest(python, tree, tests, env)
            git(tree, "checkout", "-q", "--", ".")
            git(tree, "clean", "-qfd", "tests")
            line = (
                f"{entry.patch.name}: {', '.join(Path(t).name for t in tests)}: "
                f"patched {after.summary}; before it {before.summary}"
            )
            lines.append(line)
            log(f"   own tests {line}")
            if after.code != 0 or after.passed == 0:
                failures.append(f"{entry.patch.name}: its tests do not pass on the patched tree")
            elif before.code == 0:
                failures.append(f"{entry.patch.name}: its tests pass without it")
    finally:
        git(tree, "checkout", "-q", head)
    if failures:
        raise CheckFailed("; ".join(failures))
    return lines


@dataclass
class PytestRun:
    code: int
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    snapshots_passed: int = 0
    snapshots_failed: int = 0

    @property
    def summary(self) -> str:
        parts = [f"{self.passed} passed"]
        if self.failed:
            parts.append(f"{self.failed} failed")
        if self.errors:
            parts.append(f"{self.errors} errors")
        if self.skipped:
            parts.append(f"{self.skipped} skipped")
        return ", ".join(parts)


def _counts(output: str, code: int) -> PytestRun:
    result = PytestRun(code)
    tail = "\n".join(output.strip().splitlines()[-3:])
    for number, what in re.findall(r"(\d+) (passed|failed|errors?|skipped)\b", tail):
        key = "errors" if what.startswith("error") else what
        setattr(result, key, int(number))
    for number, what in re.findall(r"(\d+) snapshots? (passed|failed)", output):
        setattr(result, f"snapshots_{what}", int(number))
    return result


def _pytest(python: Path, tree: Path, tests: list[str], env: dict[str, str]) -> PytestRun:
    proc = run(
        [python, "-m", "pytest", *PYTEST_UPSTREAM, *tests],
        cwd=tree,
        env=env,
        capture=True,
        check=False,
    )
    return _counts(proc.stdout or "", proc.returncode)


def deselected(covered: set[str]) -> list[str]:
    ids = [
        t
        for feature, tests in UNCOVERED_FEATURE_TESTS.items()
        if feature not in covered
        for t in tests
    ]
    return ids


def run_suites(python: Path, tree: Path, covered: set[str]) -> tuple[PytestRun, PytestRun]:
    """The series' upstream tests, then this project's suite; returns both runs' counts."""
    env = {**os.environ, "LIVEKIT_EXT_DISABLE": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    added = sorted((tree / "tests").glob("test_*.py")) if (tree / "tests").is_dir() else []
    upstream = PytestRun(0)
    if added:
        log(f"   upstream tests added by the series: {', '.join(p.name for p in added)}")
        upstream = _pytest(python, tree, [str(p.relative_to(tree)) for p in added], env)
        log(f"   upstream tests: {upstream.summary}")
        if upstream.code != 0:
            raise CheckFailed(f"the series' own tests failed (pytest exit {upstream.code})")
    skip: list[str] = []
    for test in deselected(covered):
        module = test.split("::", 1)[0]
        if not (ROOT / module).is_file():
            continue
        skip += ["--ignore", module] if "::" not in test else ["--deselect", test]
    log(
        f"   behaviour suite with LIVEKIT_EXT_DISABLE=1, leaving out: {' '.join(skip) or 'nothing'}"
    )
    proc = run(  # on both cores, as the README's run (pytest-xdist is in the test extra)
        [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2", *skip],
        cwd=ROOT,
        env=env,
        capture=True,
        check=False,
    )
    suite = _counts(proc.stdout or "", proc.returncode)
    if proc.returncode != 0:
        raise CheckFailed(
            f"the behaviour suite failed on the patched tree (pytest exit {proc.returncode})\n"
            + _indent("\n".join((proc.stdout or "").splitlines()[-40:]))
        )
    log(
        f"   suite: {suite.summary}; snapshots: {suite.snapshots_passed} passed, "
        f"{suite.snapshots_failed} failed"
    )
    return upstream, suite


STATUS_PROBE = (
    # the plugins first: a feature is decided when the module it patches is imported
    "import json, livekit.plugins.openai, livekit.plugins.google, livekit_ext\n"
    "print(json.dumps({k: [v.state, v.reason] for k, v in livekit_ext.status().items()}))\n"
)


def check_status(python: Path, covered: set[str]) -> None:
    """Applied as a user applies it, the extension finds each covered feature upstream: it
    reports "native" and installs nothing for it (with LIVEKIT_EXT_DISABLE=1 it would report
    "disabled", which says nothing about upstream)."""
    env = {k: v for k, v in os.environ.items() if k != "LIVEKIT_EXT_DISABLE"}
    out = run([python, "-c", STATUS_PROBE], cwd=ROOT, env=env, capture=True).stdout
    status: dict[str, list[str]] = json.loads(out.strip().splitlines()[-1])
    for feature in sorted(covered - status.keys()):
        raise CheckFailed(f"the series names {feature!r}, which livekit_ext.status() lacks")
    for feature, (state, reason) in status.items():
        if feature in covered:
            log(f"   status {feature}: {state} ({reason})")
            if state != "native":
                raise CheckFailed(
                    f"livekit_ext.status()[{feature!r}] is {state!r}, not 'native': {reason}"
                )
        elif feature in EXTENSION_ONLY:
            log(f"   status {feature}: {state} (extension-only: {EXTENSION_ONLY[feature]})")
        elif feature in UNCOVERED_FEATURE_TESTS:
            log(f"   status {feature}: {state} (no patch yet: its tests are left out above)")
        else:
            raise CheckFailed(f"{feature!r} is neither in the series nor extension-only")


def check_base(base: str, own_tests: bool = True) -> BaseResult:
    result = BaseResult(base)
    work = WORK / base
    started = time.monotonic()

    def lap(name: str) -> None:
        nonlocal started
        now = time.monotonic()
        result.timings[name] = now - started
        started = now

    try:
        series = read_series(base)
        covered = {feature for entry in series for feature in entry.features}
        log(
            f"== {base}: {len(series)} patch(es) covering {', '.join(sorted(covered)) or 'no feature'}"
        )
        # download and apply first, so that a series that does not apply fails fast
        pip = downloader()
        python = None if pip else make_venv(work / "venv")
        tree = work / "upstream"
        pristine_tree(pip or [python, "-m", "pip"], base, tree, work / "dist")
        lap("download")
        apply_series(base, tree, series)
        lap("apply")
        python = python or make_venv(work / "venv")
        install(python, tree)
        lap("install")
        if own_tests:
            check_own_tests(python, tree, series)
            lap("own tests")
        upstream, suite = run_suites(python, tree, covered)
        lap("tests")
        check_status(python, covered)
        result.ok = True
        result.detail = (
            f"{len(series)} patches applied; upstream tests {upstream.summary}; "
            f"suite {suite.summary}; snapshots {suite.snapshots_passed} passed; "
            f"every covered feature native"
        )
    except CheckFailed as failure:
        result.detail = str(failure)
        log(f"!! {base}: {failure}")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "bases",
        nargs="*",
        help=f"bases to check (default: those of {', '.join(BASES)} with a series)",
    )
    parser.add_argument(
        "--keep-going", action="store_true", help="check the next base after a failure"
    )
    parser.add_argument(
        "--skip-own-tests",
        action="store_true",
        help="do not check each patch's tests against the tree before it",
    )
    parser.add_argument(
        "--own-tests-on",
        metavar="BASE",
        help="check each patch's own tests against the tree before it on this base only "
        "(CI's sample: parity still runs on every base)",
    )
    args = parser.parse_args()

    bases = args.bases or series_bases()
    if not bases:
        log("no patches/<base>/series: nothing to check")
        log("patch parity: 0/0 bases")
        return 1
    results: list[BaseResult] = []
    for base in bases:
        own_tests = not args.skip_own_tests and args.own_tests_on in (None, base)
        results.append(check_base(base, own_tests=own_tests))
        if not results[-1].ok and not args.keep_going:
            break

    log("\npatch series:")
    for result in results:
        first_line = result.detail.splitlines()[0] if result.detail else ""
        timing = " ".join(f"{k} {v:.0f}s" for k, v in result.timings.items())
        log(
            f"  livekit-agents {result.base}: {'ok' if result.ok else 'FAILED'}: {first_line} [{timing}]"
        )
    held = sum(r.ok for r in results)
    states = ", ".join(
        f"{base} {'held' if any(r.base == base and r.ok for r in results) else 'FAILED'}"
        for base in bases
    )
    log(f"patch parity: {held}/{len(bases)} bases ({states})")
    return 0 if held == len(bases) else 1


if __name__ == "__main__":
    sys.exit(main())
