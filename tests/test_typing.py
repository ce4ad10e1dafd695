"""The documented typing pattern type-checks under mypy against the installed release.

Slow (mypy analyses livekit-agents, ~35 s cold), so it carries the ``typing`` marker: the
default run skips it and ``scripts/matrix.py`` runs it once per release.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.typing

SAMPLES = Path(__file__).parent / "typing_samples"


def _mypy(sample: str) -> tuple[str, int]:
    api = pytest.importorskip("mypy.api")
    cache = Path(sys.prefix) / ".mypy-typing-cache"
    stdout, stderr, status = api.run(
        ["--strict", "--follow-imports=silent", f"--cache-dir={cache}", str(SAMPLES / sample)]
    )
    return stdout + stderr, status


def test_a_dedup_handler_reading_the_identity_fields_type_checks() -> None:
    output, status = _mypy("dedup_handler.py")
    assert status == 0, output


def test_the_identity_fields_are_typed_not_any() -> None:
    output, status = _mypy("wrong_field_type.py")
    assert status == 1
    assert 'Incompatible return value type (got "float | None", expected "int")' in output
