"""The pytest plugin the package registers changes nothing until one of its fixtures is used,
and its fixtures work in pytest-asyncio's strict (default) and auto modes."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import EXTENSION_ENABLED
from user_project import run_in

STOCK_TEST = """
import sys

from livekit.agents.voice.events import UserInputTranscribedEvent


def test_an_agent_that_never_imports_livekit_ext_sees_stock_livekit(request):
    assert request.config.pluginmanager.has_plugin("livekit_ext")  # installed and loaded
    assert "speech_started_at" not in UserInputTranscribedEvent.model_fields
    assert [m for m in sys.modules if m.split(".")[0] == "livekit_ext"] == []
"""

FIXTURE_TEST = """
import pytest
{marker}
async def test_a_loopback_server_is_up({fixture}):
    assert {fixture}.port > 0
    from livekit.agents.voice.events import UserInputTranscribedEvent

    assert "speech_started_at" in UserInputTranscribedEvent.model_fields  # used: now applied
"""


def _pytest(project: Path, files: dict[str, str], *options: str) -> str:
    """Run pytest in a scratch project; its output, once it passed."""
    result = run_in(project, files, "-m", "pytest", "-p", "no:cacheprovider", *options)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.mark.skipif(
    not EXTENSION_ENABLED, reason="upstream with patches/ declares the fields itself"
)
def test_installed_plugin_leaves_livekit_stock_until_a_fixture_is_used(tmp_path: Path) -> None:
    """Strict mode (pytest-asyncio's default): the stock test first, then one using a fixture
    (each fixture is used once: the OpenAI one here in strict mode, the Gemini one in auto)."""
    files = {
        "test_a_stock.py": STOCK_TEST,
        "test_b_fixture.py": FIXTURE_TEST.format(
            marker="@pytest.mark.asyncio", fixture="openai_realtime_server"
        ),
    }
    assert "2 passed" in _pytest(tmp_path, files)


def test_a_fixture_works_in_auto_mode_without_a_marker(tmp_path: Path) -> None:
    files = {"test_fixture.py": FIXTURE_TEST.format(marker="", fixture="gemini_live_server")}
    assert "1 passed" in _pytest(tmp_path, files, "-o", "asyncio_mode=auto")
