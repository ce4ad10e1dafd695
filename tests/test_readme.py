"""Every ```python block of README.md and CONTRIBUTING.md runs as printed, in a scratch
project outside the repository, against the installed package (convention: CONTRIBUTING.md,
"Snippets in the docs").

Script snippets of one document run one after another in one Python process, each with fresh
globals in a directory of its own (the imports of livekit-agents are paid once); a name a
snippet does not import or define still fails it. A snippet that only defines functions
names a harness (``then: <name>``, ``readme_harnesses.py``) that calls them with a real
session and fails unless their callbacks fired. Pytest snippets run the way a user's project
would: in a fresh venv holding only ``livekit-ext[pytest]`` and the extras the snippet says it
needs, with pytest's default settings.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from user_project import run_in, scratch_env

ROOT = Path(__file__).resolve().parent.parent
HARNESSES = Path(__file__).resolve().parent / "readme_harnesses.py"
DOCS = ("README.md", "CONTRIBUTING.md")
HOW = re.compile(
    r"<!--\s*snippet:\s*("
    r"script(?:,\s*then:\s*(?P<then>\w+))?(?:,\s*prints:\s*(?P<prints>.*?))?"
    r"|pytest|not run:\s*.*?)\s*-->"
)
# in [test] (the package's own suite), never needed by a user's project
_TEST_ONLY = ("mypy", "hypothesis", "pocketsphinx", "syrupy", "xdist")
FENCE = re.compile(r"^```(\w*)")
NEEDS = re.compile(r'^# needs: pip install "livekit-ext\[(?P<extras>[\w,-]+)\]"$', re.M)
# what a snippet uses -> the extra that installs it (the snippet must say so in `# needs:`)
USES = {
    "openai": re.compile(
        r"livekit\.plugins import openai|livekit\.plugins\.openai|OpenAIRealtimeServer"
        r"|openai_server|openai_realtime_session"
    ),
    "google": re.compile(
        r"livekit\.plugins import google|livekit\.plugins\.google|GeminiLiveServer"
        r"|gemini_server|gemini_realtime_session"
    ),
}

RUNNER = """
import os, runpy, sys, traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # readme_harnesses.py
for path in sys.argv[1:]:
    os.chdir(os.path.dirname(path))
    try:
        runpy.run_path(path, run_name="__main__")
        ok = True
    except SystemExit as exit:
        ok = exit.code in (None, 0)
    except BaseException:
        traceback.print_exc()
        ok = False
    print(f"snippet {os.path.basename(os.path.dirname(path))}: {'ok' if ok else 'FAILED'}", flush=True)
"""

DRIVER = """
# -- appended by tests/test_readme.py (then: {then}): call what the snippet defined
import readme_harnesses

readme_harnesses.drive({then!r}, globals())
"""


@dataclass(frozen=True)
class Snippet:
    doc: str
    line: int
    how: str
    """``script``, ``pytest``, ``not run: <reason>`` or ``""`` (no marker)."""
    code: str
    prints: str | None = None
    """For ``script, prints: <text>``: a line of its output must contain ``<text>``."""
    then: str | None = None
    """For ``script, then: <harness>``: the harness that calls what the snippet defined."""

    @property
    def name(self) -> str:
        return f"{self.doc.removesuffix('.md')}-L{self.line}"

    @property
    def extras(self) -> set[str]:
        """The extras its ``# needs: pip install "livekit-ext[...]"`` line names."""
        return {e for m in NEEDS.finditer(self.code) for e in m.group("extras").split(",")}


def snippets(doc: str) -> list[Snippet]:
    found: list[Snippet] = []
    lines = (ROOT / doc).read_text().splitlines()
    previous, i = "", 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if fence is None:
            if lines[i].strip():
                previous = lines[i]
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        if fence.group(1).lower() in ("python", "py", "python3"):
            marker = HOW.fullmatch(previous.strip())
            how = re.sub(r"\s+", " ", marker.group(1)) if marker else ""
            prints = marker.group("prints") if marker else None
            then = marker.group("then") if marker else None
            if prints is not None or then is not None:
                how = "script"
            code = "\n".join(lines[i + 1 : end]) + "\n"
            found.append(Snippet(doc, i + 1, how, code, prints, then))
        previous, i = "", end + 1
    return found


ALL = [s for doc in DOCS for s in snippets(doc)]


def test_every_python_snippet_says_how_it_runs() -> None:
    unmarked = [f"{s.doc}:{s.line}" for s in ALL if not s.how]
    assert not unmarked, (
        "put <!-- snippet: script -->, <!-- snippet: pytest --> or "
        f"<!-- snippet: not run: <reason> --> on the line before: {unmarked}"
    )
    bare = [f"{s.doc}:{s.line}" for s in ALL if s.how == "not run:"]
    assert not bare, f"'not run' needs a reason: {bare}"
    assert any(s.how == "script" for s in ALL) and any(s.how == "pytest" for s in ALL)
    import readme_harnesses

    unknown = [f"{s.doc}:{s.line}: {s.then}" for s in ALL if s.then is not None]
    unknown = [u for u in unknown if u.rpartition(": ")[2] not in readme_harnesses.HARNESSES]
    assert not unknown, f"no such harness in tests/readme_harnesses.py: {unknown}"


def test_a_snippet_that_needs_an_extra_says_which() -> None:
    """A reader pasting a snippet learns from it what to install (the light venv reads it too)."""
    missing = []
    for s in ALL:
        needed = {extra for extra, uses in USES.items() if uses.search(s.code)}
        if s.how == "pytest":
            needed.add("pytest")
        if needed - s.extras:
            missing.append(
                f'{s.doc}:{s.line}: # needs: pip install "livekit-ext[{",".join(sorted(needed))}]"'
            )
    assert not missing, f"say what a snippet needs, in a line of its own: {missing}"


@pytest.mark.parametrize("doc", [d for d in DOCS if any(s.how == "script" for s in snippets(d))])
def test_script_snippets_run(doc: str, tmp_path: Path) -> None:
    scripts = [s for s in snippets(doc) if s.how == "script"]
    paths = []
    for s in scripts:
        (tmp_path / s.name).mkdir()
        paths.append(str(tmp_path / s.name / "snippet.py"))
        driver = DRIVER.format(then=s.then) if s.then else ""
        (tmp_path / s.name / "snippet.py").write_text(s.code + driver)
    files = {"run_snippets.py": RUNNER, HARNESSES.name: HARNESSES.read_text()}
    result = run_in(tmp_path, files, "run_snippets.py", *paths)
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    output: dict[str, list[str]] = {}
    printed: list[str] = []
    for line in result.stdout.splitlines():  # a snippet's output comes before its status line
        if (status := re.fullmatch(r"snippet (\S+): (ok|FAILED)", line)) is not None:
            if status.group(2) == "ok":
                output[status.group(1)] = printed
            printed = []
        else:
            printed.append(line)
    disabled = os.environ.get("LIVEKIT_EXT_DISABLE") == "1"
    for s in scripts:
        assert s.name in output, f"{s.doc}:{s.line} failed:\n{report}"  # no "ok" line
        if s.prints is not None and disabled and s.prints in UNPATCHED_PRINTS:
            continue  # it ran; what it prints needs a feature patches/ does not carry yet
        if s.prints is not None:
            assert any(s.prints in line for line in output[s.name]), (
                f"{s.doc}:{s.line} did not print {s.prints!r}:\n{report}"
            )


UNPATCHED_PRINTS = {"user_speaking item_1 hello": "utterance traces (LiveKit's spans)"}
"""Output of snippets that needs what ``patches/`` does not carry yet (``check_patches``'
``UNCOVERED_FEATURE_TESTS``): with the extension disabled over patched upstream the snippet
must still run, and its output is not checked."""


# -- the light venv: under xdist, built in the background from collection on ----------------
#
# Creating a venv and installing livekit-ext[pytest,openai] into it takes 30-60 s, most of it
# pip resolving against the index; started when this test runs (late in the file order), it
# would add that to the README's test run. So under xdist (that run: -n 2) the first worker
# to import this module starts the build in the background (an atomic mkdir picks it), and
# the test waits for it. A run that never gets to the test kills the build at exit and
# removes it; the test claims the build first, so an exiting worker leaves alone a build the
# other worker's test is using. Without xdist (.ci/run's marker runs, the matrix) nothing
# starts early: the test builds its venv when it runs, and a run that deselects it pays
# nothing.

PYTEST_SNIPPETS = [s for s in ALL if s.how == "pytest"]
LIGHT_EXTRAS = sorted({"pytest"}.union(*(s.extras for s in PYTEST_SNIPPETS)))

BUILDER = """
import subprocess, sys
from pathlib import Path

state, pip_python, spec = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
with open(state / "log", "w") as log:
    steps = [
        [sys.executable, "-m", "venv", "--without-pip", str(state / "venv")],
        [pip_python, "-m", "pip", "--python", str(state / "venv" / "bin" / "python"),
         "install", "-q", "--no-compile", spec],
    ]
    rc = 0
    for step in steps:
        rc = subprocess.run(step, stdout=log, stderr=subprocess.STDOUT).returncode
        if rc:
            break
(state / "rc.tmp").write_text(str(rc))
(state / "rc.tmp").rename(state / "rc")
"""


def _start_light_venv(state: Path) -> subprocess.Popen[bytes]:
    """Build ``state/venv``: a fresh venv holding only this checkout's
    ``livekit-ext[LIGHT_EXTRAS]`` and its dependencies, as a user's project would. The wheel
    is built from the checkout (not editable), so what is tested is what gets installed; the
    venv has no pip of its own (this Python's pip installs into it). ``state/rc`` holds pip's
    exit status once done, ``state/log`` its output."""
    spec = f"{ROOT}[{','.join(LIGHT_EXTRAS)}]"
    return subprocess.Popen(
        [sys.executable, "-c", BUILDER, str(state), sys.executable, spec],
        env=scratch_env(),
        start_new_session=True,  # its own process group: killed whole if abandoned
    )


def _claim(state: Path) -> bool:
    """Take the build (atomically, once): whoever claims it uses it and removes it."""
    try:
        os.close(os.open(state / "claimed", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except (FileExistsError, FileNotFoundError):  # claimed; or used and removed already
        return False
    return True


def _abandon(state: Path, build: subprocess.Popen[bytes]) -> None:
    """At exit: a build no test claimed is killed and removed."""
    if not _claim(state):
        return
    if build.poll() is None:
        os.killpg(build.pid, signal.SIGKILL)
        build.wait()
    shutil.rmtree(state, ignore_errors=True)


def _prebuild() -> Path | None:
    if not PYTEST_SNIPPETS:
        return None
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if run is None:
        return None
    state = Path(tempfile.gettempdir()) / f"livekit-ext-light-venv-{run}"
    try:
        state.mkdir()
    except FileExistsError:  # the other worker builds it
        return state
    atexit.register(_abandon, state, _start_light_venv(state))
    return state


LIGHT_VENV = _prebuild()


def test_pytest_snippets_pass_in_a_project_with_only_the_light_extra(tmp_path: Path) -> None:
    """``pip install "livekit-ext[pytest,<plugin>]"`` is all a user's project needs for the
    loopback fixtures: no mypy, hypothesis, pocketsphinx, or the other plugin."""
    assert PYTEST_SNIPPETS
    build = None
    state = LIGHT_VENV if LIGHT_VENV is not None and _claim(LIGHT_VENV) else None
    if state is None:  # no xdist; or taken already (by an exiting worker, or an earlier run)
        state = tmp_path / "light"
        state.mkdir()
        build = _start_light_venv(state)
    try:
        began = time.monotonic()
        deadline = began + 600
        while not (state / "rc").exists():
            assert time.monotonic() < deadline, "the light venv took over 600 s to build"
            time.sleep(0.2)
        waited = time.monotonic() - began
        if build is not None:
            build.wait()
        log = (state / "log").read_text()
        extras = ",".join(LIGHT_EXTRAS)
        assert (state / "rc").read_text() == "0", f"installing livekit-ext[{extras}]:\n{log}"
        python = state / "venv" / "bin" / "python"
        files = {f"test_{s.name.replace('-', '_')}.py": s.code for s in PYTEST_SNIPPETS}
        result = subprocess.run(
            [str(python), "-m", "pytest", "-p", "no:cacheprovider", "-v"],
            cwd=_project(tmp_path / "project", files),
            env=scratch_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        report = f"(a venv of livekit-ext[{extras}]; waited {waited:.0f} s for it)\n"
        report += result.stdout + result.stderr
        assert result.returncode == 0, report
        for name in files:
            assert re.search(rf"^{re.escape(name)}::\S+ PASSED", result.stdout, re.M), report
        heavy = "import importlib.util as u; print([m for m in HEAVY if u.find_spec(m)])"
        listed = subprocess.run(
            [str(python), "-c", heavy.replace("HEAVY", repr(_TEST_ONLY))],
            capture_output=True,
            text=True,
            check=True,
        )
        assert listed.stdout.strip() == "[]", f"the light venv has {listed.stdout}: [test] leaked"
    finally:
        shutil.rmtree(state, ignore_errors=True)


def _project(path: Path, files: dict[str, str]) -> Path:
    """An empty project: pytest's rootdir pinned here, its default settings."""
    path.mkdir()
    (path / "pytest.ini").write_text("[pytest]\n")
    for name, text in files.items():
        (path / name).write_text(text)
    return path
