#!/usr/bin/env python3
"""Build the sdist and the wheel, check them, and install the wheel the ways a user would.

    .venv/bin/python scripts/check_dist.py          # needs build and twine in that Python
    .venv/bin/python scripts/check_dist.py --keep   # keep the venvs (printed) for a look

1. pyproject.toml: no livekit requirement carries a version bound (pip would act on it and
   change the user's livekit; the range is checked at run time by ``livekit_ext/_compat.py``),
   and the version is ``livekit_ext.__version__``.
2. ``python -m build`` (the sdist, then the wheel from the sdist) and ``twine check --strict``;
   both archives listed, LICENSE in both, every tracked package file in the wheel.
3. The wheel installed into fresh venvs, each holding a user's livekit first (four venvs, run
   side by side; each extra installed into its release's venv in turn):
   - the lowest and the newest tested release: no extra, then ``[openai]``, ``[google]``,
     ``[all]`` (the plugin each adds pinned to the release, as the README says); after
     each, pip has changed no livekit distribution, ``livekit_ext.__version__`` is the
     wheel's, and ``python -m livekit_ext --help`` and ``doctor`` run (doctor exits 0);
   - a release below the range (1.4.4 with its OpenAI plugin) and a supported one (1.5.17):
     ``[openai]`` installed over them changes no livekit distribution. Below the range,
     importing livekit_ext warns once, applies nothing (every feature ``unsupported``, the
     reason naming the release to move to) and doctor names the pip command.

The last line is ``dist: ok (N installs)``; the exit status is non-zero on any failure.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType

import tomllib

ROOT = Path(__file__).resolve().parent.parent
BELOW_RANGE = "1.4.4"  # a release a project may still be on; livekit-ext must leave it alone
PLUGINS = {"openai": "livekit-plugins-openai", "google": "livekit-plugins-google"}

_print_lock = threading.Lock()


class CheckFailed(Exception):
    """One check did not hold; the message says which and what was seen."""


def say(label: str, text: str) -> None:
    with _print_lock:
        for line in text.splitlines() or [""]:
            print(f"[{label}] {line}" if label else line, flush=True)


def run(
    label: str, args: list[str], *, check: bool = True, show: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command and print it (or ``show``) with its time; its output only if it fails.

    Outside the repository (cwd): ``python -c`` must import the installed livekit_ext, not the
    checkout. Bytecode is written (into the fresh venvs): each module compiles once.
    """
    shown = show or " ".join(a if " " not in a else repr(a) for a in args)
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "NO_COLOR": "1"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    started = time.monotonic()
    proc = subprocess.run(args, capture_output=True, text=True, env=env, cwd=tempfile.gettempdir())
    say(label, f"$ {shown}  [{time.monotonic() - started:.1f}s]")
    if check and proc.returncode != 0:
        raise CheckFailed(f"{shown} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
    return proc


def load_compat() -> ModuleType:
    """``livekit_ext/_compat.py`` by path: the package's ``__init__`` need not load for it."""
    spec = importlib.util.spec_from_file_location(
        "_check_dist_compat", ROOT / "livekit_ext/_compat.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while creating
    spec.loader.exec_module(module)
    return module


def source_version() -> str:
    text = (ROOT / "livekit_ext/__init__.py").read_text()
    match = re.search(r'^__version__ = "([^"]+)"$', text, re.MULTILINE)
    if not match:
        raise CheckFailed('livekit_ext/__init__.py has no line __version__ = "..."')
    return match.group(1)


def check_pyproject(compat: ModuleType) -> None:
    """No livekit bound pip would act on; one version source; the range declared in _compat."""
    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    meta = project["project"]
    requirements = list(meta["dependencies"])
    for extra, items in meta.get("optional-dependencies", {}).items():
        requirements += [f"{item} ; extra == '{extra}'" for item in items]
    bounded = [
        text
        for text in requirements
        if (req := Requirement(text)).name.startswith("livekit-")
        and req.name != "livekit-ext"
        and str(req.specifier)
    ]
    if bounded:
        raise CheckFailed(
            f"pyproject.toml bounds livekit: {bounded}; pip would change the user's livekit "
            "to meet them. Declare the range in livekit_ext/_compat.py (MIN_RELEASE) instead."
        )
    if "version" in meta or "version" not in meta.get("dynamic", []):
        raise CheckFailed('pyproject.toml: the version must be dynamic = ["version"]')
    if project["tool"]["hatch"]["version"].get("path") != "livekit_ext/__init__.py":
        raise CheckFailed(
            "pyproject.toml: [tool.hatch.version] path must be livekit_ext/__init__.py"
        )
    instruments = [Requirement(text) for text in compat.INSTRUMENTS]
    if [(r.name, str(r.specifier)) for r in instruments] != [
        ("livekit-agents", f">={compat.MIN_RELEASE}")
    ]:
        raise CheckFailed(f"_compat.INSTRUMENTS {compat.INSTRUMENTS} disagrees with MIN_RELEASE")
    if compat.TESTED_RELEASES[0] != compat.MIN_RELEASE:
        raise CheckFailed("_compat.TESTED_RELEASES does not start at MIN_RELEASE")
    if not compat.is_older(compat.release(BELOW_RANGE), compat.MIN_RELEASE):
        raise CheckFailed(f"{BELOW_RANGE} is not below the range any more; pick an older one")


def build(out: Path) -> tuple[Path, Path]:
    """The sdist, then the wheel built from it (what a source install would build)."""
    run("build", [sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)])
    sdists, wheels = sorted(out.glob("*.tar.gz")), sorted(out.glob("*.whl"))
    if len(sdists) != 1 or len(wheels) != 1:
        raise CheckFailed(f"expected one sdist and one wheel in {out}, found {sdists + wheels}")
    proc = run(
        "twine", [sys.executable, "-m", "twine", "check", "--strict", *map(str, sdists + wheels)]
    )
    say("twine", re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout).strip())
    return sdists[0], wheels[0]


def check_archives(sdist: Path, wheel: Path, version: str) -> None:
    with zipfile.ZipFile(wheel) as archive:
        wheel_files = archive.namelist()
        metadata = archive.read(f"livekit_ext-{version}.dist-info/METADATA").decode()
    with tarfile.open(sdist) as archive:
        sdist_files = [m.name for m in archive.getmembers() if m.isfile()]
    say("wheel", f"{wheel.name}: {len(wheel_files)} files")
    say("wheel", "\n".join(f"  {name}" for name in wheel_files))
    say("sdist", f"{sdist.name}: {len(sdist_files)} files")
    say("sdist", "\n".join(f"  {name}" for name in sdist_files))

    if wheel.name != f"livekit_ext-{version}-py3-none-any.whl":
        raise CheckFailed(
            f"the wheel {wheel.name} is not version {version} (livekit_ext.__version__)"
        )
    if f"\nVersion: {version}\n" not in metadata:
        raise CheckFailed(f"the wheel's METADATA does not say Version: {version}")
    if not metadata.startswith("Metadata-Version: 2.4\n"):
        raise CheckFailed(
            "the wheel's METADATA is not version 2.4 (pyproject: core-metadata-version)"
        )
    if "\nLicense-Expression: Apache-2.0\n" not in metadata:
        raise CheckFailed("the wheel's METADATA has no License-Expression: Apache-2.0")
    prefix = f"livekit_ext-{version}/"
    required_sdist = ["LICENSE", "README.md", "CHANGELOG.md", "pyproject.toml", "PKG-INFO"]
    missing = [name for name in required_sdist if prefix + name not in sdist_files]
    if f"livekit_ext-{version}.dist-info/licenses/LICENSE" not in wheel_files:
        missing.append("LICENSE (wheel)")
    tracked = subprocess.run(
        ["git", "ls-files", "livekit_ext", "livekit_ext_pytest.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    missing += [f"{name} (wheel)" for name in tracked if name not in wheel_files]
    missing += [f"{name} (sdist)" for name in tracked if prefix + name not in sdist_files]
    if missing:
        raise CheckFailed(f"missing from the archives: {missing}")
    strays = [name for name in wheel_files if name.startswith(("tests/", "scripts/", "patches/"))]
    if strays:
        raise CheckFailed(f"the wheel carries files that are not the package: {strays}")


class Venv:
    """A fresh venv, with pip run from this Python (``pip --python``): no pip bootstrapped.

    Removed when its job ends (``--keep`` keeps it), while the other jobs still run.
    """

    keep = False

    def __init__(self, root: Path, label: str) -> None:
        self.label = label
        self.path = root / label
        self.python = str(self.path / "bin" / "python")

    def __enter__(self) -> Venv:
        run(
            self.label, [sys.executable, "-m", "venv", "--without-pip", str(self.path)], show="venv"
        )
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.keep:
            shutil.rmtree(self.path, ignore_errors=True)

    def pip_install(self, *requirements: str) -> None:
        shown = " ".join(Path(r).name if r.startswith("/") else r for r in requirements)
        run(
            self.label,
            [sys.executable, "-m", "pip", "--python", self.python, "install", "-q",
             "--no-compile", *requirements],
            show=f"pip install {shown}",
        )  # fmt: skip

    def livekit(self) -> dict[str, str]:
        """Every installed livekit distribution and its version (livekit-ext aside)."""
        code = (
            "import json; from importlib import metadata\n"
            "names = {d.metadata['Name'].lower().replace('_', '-'): d.version"
            " for d in metadata.distributions()}\n"
            "print(json.dumps({n: v for n, v in names.items()"
            " if n.startswith('livekit') and n != 'livekit-ext'}))"
        )
        proc = run(self.label, [self.python, "-c", code], show="python: the livekit versions")
        found: dict[str, str] = json.loads(proc.stdout)
        return found

    def python_c(self, code: str, *args: str, show: str) -> subprocess.CompletedProcess[str]:
        return run(self.label, [self.python, "-c", code, *args], check=False, show=show)


def unchanged(venv: Venv, before: dict[str, str], after: dict[str, str], what: str) -> None:
    changed = {
        name: f"{version} -> {after.get(name, 'removed')}"
        for name, version in before.items()
        if after.get(name) != version
    }
    if changed:
        raise CheckFailed(f"{what} changed the user's livekit: {changed}")
    kept = ", ".join(f"{n} {v}" for n, v in sorted(after.items()) if n in before)
    added = ", ".join(f"{n} {v}" for n, v in sorted(after.items()) if n not in before)
    say(venv.label, f"{what}: livekit unchanged ({kept})" + (f"; added {added}" if added else ""))


_IMPORT = """
import sys, livekit_ext
assert livekit_ext.__version__ == sys.argv[1], (livekit_ext.__version__, sys.argv[1])
print("livekit_ext", livekit_ext.__version__)
"""


def smoke(venv: Venv, version: str, *, doctor_ok: bool = True) -> subprocess.CompletedProcess[str]:
    """The import says the wheel's version; --help and doctor run."""
    proc = venv.python_c(_IMPORT, version, show=f"python: livekit_ext.__version__ == {version!r}")
    if proc.returncode != 0:
        raise CheckFailed(f"import livekit_ext failed:\n{proc.stdout}{proc.stderr}")
    run(
        venv.label,
        [venv.python, "-m", "livekit_ext", "--help"],
        show="python -m livekit_ext --help",
    )
    doctor = run(
        venv.label,
        [venv.python, "-m", "livekit_ext", "doctor"],
        check=False,
        show="python -m livekit_ext doctor",
    )
    if doctor_ok and doctor.returncode != 0:
        raise CheckFailed(f"doctor exited {doctor.returncode}:\n{doctor.stdout}{doctor.stderr}")
    states = re.findall(r"^[a-z_]+: ([a-z ]+) \(", doctor.stdout, re.MULTILINE)
    counts = ", ".join(f"{states.count(s)} {s}" for s in sorted(set(states)))
    say(venv.label, f"doctor exits {doctor.returncode}: {counts}")
    return doctor


def tested_release(root: Path, wheel: Path, version: str, release: str) -> int:
    """The wheel with each extra, into a project on ``release``: nothing changes.

    A plugin the extra adds is pinned to the release, as the README says: unpinned, pip takes
    the newest plugin and upgrades livekit-agents for it where the plugin's own requirement
    asks (seen: ``[google]`` over 1.4.6 moved livekit-agents to 1.8.9). livekit-ext's own
    requirements never move it.
    """
    installs = 0
    with Venv(root, f"lk-{release}") as venv:
        venv.pip_install(f"livekit-agents=={release}")  # the user's project
        for extra, plugin in (("", ""), ("openai", "openai"), ("google", "google"), ("all", "")):
            before = venv.livekit()
            spec = f"{wheel}[{extra}]" if extra else str(wheel)
            venv.pip_install(spec, *([f"{PLUGINS[plugin]}=={release}"] if plugin else []))
            installs += 1
            after = venv.livekit()
            unchanged(venv, before, after, f"livekit-ext[{extra}]" if extra else "livekit-ext")
            wrong = {
                n: v for n, v in after.items() if n.startswith("livekit-plugins-") and v != release
            }
            if wrong:
                raise CheckFailed(f"plugins not at {release}: {wrong}")
            smoke(venv, version)
    return installs


def kept_release(root: Path, wheel: Path, version: str, release: str, compat: ModuleType) -> int:
    """``[openai]`` into a project on ``release`` (+ its OpenAI plugin): pip changes neither.

    Below the range, importing livekit_ext then warns once and applies nothing.
    """
    with Venv(root, f"keep-{release}") as venv:
        _kept_release(venv, wheel, version, release, compat)
    return 1


def _kept_release(venv: Venv, wheel: Path, version: str, release: str, compat: ModuleType) -> None:
    venv.pip_install(f"livekit-agents=={release}", f"{PLUGINS['openai']}=={release}")
    before = venv.livekit()
    venv.pip_install(f"{wheel}[openai]")
    unchanged(venv, before, venv.livekit(), "livekit-ext[openai]")
    if not compat.is_older(compat.release(release), compat.MIN_RELEASE):
        smoke(venv, version)
        return
    move_to = f"pip install 'livekit-agents>={compat.MIN_RELEASE}'"
    proc = venv.python_c(
        _BELOW_RANGE, show="python: import livekit_ext, livekit; apply(); status()"
    )
    if proc.returncode != 0:
        raise CheckFailed(f"the below-range import failed:\n{proc.stdout}{proc.stderr}")
    warnings = [
        line for line in proc.stderr.splitlines() if f"older than {compat.MIN_RELEASE}" in line
    ]
    if len(warnings) != 1 or move_to not in warnings[0]:
        raise CheckFailed(f"expected one warning naming {move_to!r}; stderr:\n{proc.stderr}")
    statuses: dict[str, list[str]] = json.loads(proc.stdout)
    wrong = {  # applied, or not applied for a reason other than the release (or no plugin)
        feature: state
        for feature, state in statuses.items()
        if state[0] in ("patched", "native")
        or ("not installed" not in state[1] and not (release in state[1] and move_to in state[1]))
    }
    if wrong or statuses["transcript_identity"][0] != "unsupported":
        raise CheckFailed(f"below the range, features applied or not naming the release: {wrong}")
    say(venv.label, f"one warning: {warnings[0]}")
    states = [state for state, _ in statuses.values()]
    counts = ", ".join(f"{states.count(s)} {s}" for s in sorted(set(states)))
    say(venv.label, f"status(): {counts}; nothing applied")
    doctor = smoke(venv, version, doctor_ok=False)
    if doctor.returncode != 1 or move_to not in doctor.stdout:
        raise CheckFailed(
            f"doctor below the range should exit 1 naming {move_to!r}:\n{doctor.stdout}"
        )
    say(
        venv.label,
        f"doctor says: {next(line for line in doctor.stdout.splitlines() if move_to in line)}",
    )


_BELOW_RANGE = """
import json, livekit_ext
import livekit.agents, livekit.plugins.openai  # the application's imports apply the features
livekit_ext.apply()  # asked again: still one warning
print(json.dumps({name: [s.state, s.reason] for name, s in livekit_ext.status().items()}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the venvs and archives")
    parser.add_argument("--jobs", type=int, default=4, help="venvs installed side by side")
    args = parser.parse_args()

    started = time.monotonic()
    compat = load_compat()
    version = source_version()
    check_pyproject(compat)
    say("", f"pyproject: no livekit bound; version {version} from livekit_ext/__init__.py; "
            f"range checked at run time ({', '.join(compat.INSTRUMENTS)})")  # fmt: skip
    root = Path(tempfile.mkdtemp(prefix="check-dist-"))
    Venv.keep = args.keep
    if args.keep:
        say("", f"kept after the run: {root}")
    try:
        sdist, wheel = build(root / "dist")
        check_archives(sdist, wheel, version)
        say("", f"build, twine check and archives: {time.monotonic() - started:.0f}s")
        jobs: list[Callable[[], int]] = [
            lambda: kept_release(root, wheel, version, BELOW_RANGE, compat),
            lambda: tested_release(root, wheel, version, compat.MIN_RELEASE),
            lambda: tested_release(root, wheel, version, compat.NEWEST_TESTED),
            lambda: kept_release(root, wheel, version, compat.TESTED_RELEASES[1], compat),
        ]
        failures: list[str] = []
        installs = 0
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            for future in [pool.submit(job) for job in jobs]:
                try:
                    installs += future.result()
                except CheckFailed as failed:
                    failures.append(str(failed))
        for failure in failures:
            say("FAILED", failure)
        elapsed = time.monotonic() - started
        if failures:
            print(f"dist: FAILED ({len(failures)} of {len(jobs)} venvs, {elapsed:.0f}s)")
            return 1
        print(f"dist: ok ({installs} installs, {elapsed:.0f}s)")
        return 0
    except CheckFailed as failed:
        say("FAILED", str(failed))
        print("dist: FAILED")
        return 1
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
