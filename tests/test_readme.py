"""Every ```python block of README.md and CONTRIBUTING.md runs as printed, in a scratch
project outside the repository, against the installed package (convention: CONTRIBUTING.md,
"Snippets in the docs").

Script snippets of one document run one after another in one Python process, each with fresh
globals in a directory of its own (the imports of livekit-agents are paid once); a name a
snippet does not import or define still fails it. Pytest snippets run in one pytest session
with pytest's default settings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from _scratch import run_in

ROOT = Path(__file__).resolve().parent.parent
DOCS = ("README.md", "CONTRIBUTING.md")
HOW = re.compile(
    r"<!--\s*snippet:\s*(script(?:,\s*prints:\s*(?P<prints>.*?))?|pytest|not run:\s*.*?)\s*-->"
)
FENCE = re.compile(r"^```(\w*)")

RUNNER = """
import os, runpy, sys, traceback

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


@dataclass(frozen=True)
class Snippet:
    doc: str
    line: int
    how: str
    """``script``, ``pytest``, ``not run: <reason>`` or ``""`` (no marker)."""
    code: str
    prints: str | None = None
    """For ``script, prints: <text>``: a line of its output must contain ``<text>``."""

    @property
    def name(self) -> str:
        return f"{self.doc.removesuffix('.md')}-L{self.line}"


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
            if prints is not None:
                how = "script"
            code = "\n".join(lines[i + 1 : end]) + "\n"
            found.append(Snippet(doc, i + 1, how, code, prints))
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


@pytest.mark.parametrize("doc", [d for d in DOCS if any(s.how == "script" for s in snippets(d))])
def test_script_snippets_run(doc: str, tmp_path: Path) -> None:
    scripts = [s for s in snippets(doc) if s.how == "script"]
    paths = []
    for s in scripts:
        (tmp_path / s.name).mkdir()
        paths.append(str(tmp_path / s.name / "snippet.py"))
        (tmp_path / s.name / "snippet.py").write_text(s.code)
    result = run_in(tmp_path, {"run_snippets.py": RUNNER}, "run_snippets.py", *paths)
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
    for s in scripts:
        assert s.name in output, f"{s.doc}:{s.line} failed:\n{report}"  # no "ok" line
        if s.prints is not None:
            assert any(s.prints in line for line in output[s.name]), (
                f"{s.doc}:{s.line} did not print {s.prints!r}:\n{report}"
            )


@pytest.mark.parametrize("doc", [d for d in DOCS if any(s.how == "pytest" for s in snippets(d))])
def test_pytest_snippets_pass(doc: str, tmp_path: Path) -> None:
    tests = [s for s in snippets(doc) if s.how == "pytest"]
    files = {f"test_{s.name.replace('-', '_')}.py": s.code for s in tests}
    result = run_in(tmp_path, files, "-m", "pytest", "-p", "no:cacheprovider", "-v")
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    for name in files:
        assert re.search(rf"^{re.escape(name)}::\S+ PASSED", result.stdout, re.M), report
