"""Run code the way a user's own project would: files in an empty directory outside the
repository, the installed package, pytest with its default settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# what the outer pytest run or CI sets must not leak into the user's run
_OUTER_ENV = ("PYTEST_ADDOPTS", "PYTEST_CURRENT_TEST", "PYTEST_PLUGINS", "PYTHONPATH")


def scratch_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _OUTER_ENV}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def run_in(
    project: Path, files: dict[str, str], *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Write ``files`` into ``project`` (a directory outside the repository) and run
    ``python *args`` there. An empty ``pytest.ini`` pins pytest's rootdir to the project,
    so no configuration above it applies: pytest's defaults, as in a fresh project."""
    project.mkdir(parents=True, exist_ok=True)
    (project / "pytest.ini").write_text("[pytest]\n")
    for name, text in files.items():
        (project / name).write_text(text)
    return subprocess.run(
        [sys.executable, *args],
        cwd=project,
        env=scratch_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
