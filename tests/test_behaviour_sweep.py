"""The behaviour sweep's own logic: which releases the CI sample takes, how pytest's report
becomes the table's cells."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import behaviour_sweep  # a script, found as it finds its siblings

pytestmark = pytest.mark.unit


def test_the_sample_is_each_minors_first_and_last_less_the_matrix() -> None:
    releases = ["1.4.6", "1.5.0", "1.5.1", "1.5.2", "1.5.17", "1.6.0", "1.6.9", "1.6.10"]
    matrix = ("1.4.6", "1.5.17", "1.6.10")
    sampled = behaviour_sweep.sample(releases, matrix)
    assert sampled == ["1.5.0", "1.5.1", "1.6.0"]  # 1.5.1: a BEHAVIOUR_CHANGES release
    assert "1.5.1" in behaviour_sweep.BEHAVIOUR_CHANGES
    # the last of a minor the matrix does not run is taken too
    assert behaviour_sweep.sample(["1.7.0", "1.7.1"], ()) == ["1.7.0", "1.7.1"]


def test_cells_from_the_pytest_report(tmp_path: Path) -> None:
    report = tmp_path / "smoke.xml"
    report.write_text(
        """<testsuites><testsuite>
        <testcase name="test_identity_openai"/>
        <testcase name="test_identity_gemini"><failure message="AssertionError: no id"/></testcase>
        <testcase name="test_azure_nulls[v1]"/>
        <testcase name="test_azure_nulls[ga-2025-08-28]"/>
        <testcase name="test_azure_nulls[preview-2025-04-01]">
          <skipped message="this release sends the GA shape"/></testcase>
        <testcase name="test_bad_frame_openai"/>
        </testsuite></testsuites>"""
    )
    cells = behaviour_sweep.smoke_cells(report, tmp_path / "log")
    states = {column: cell.state for column, cell in cells.items()}
    assert states == {
        "id openai": "ok",
        "id gemini": "FAIL",
        "azure v1": "ok",
        "azure GA": "ok",
        "azure preview": "n/a",
        "bad frame openai": "ok",
        "bad frame gemini": "FAIL",  # a column no test ran is not ok
    }
    assert cells["id gemini"].reason.startswith("AssertionError: no id")
    assert cells["azure preview"].reason == "this release sends the GA shape"
