"""The patch engine: idempotent apply, exact revert, status, the off switch, bad versions."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest
from livekit.agents.voice.agent_activity import AgentActivity
from livekit.agents.voice.agent_session import AgentSession
from livekit.agents.voice.events import UserInputTranscribedEvent

import livekit_ext
from livekit_ext import _compat
from livekit_ext._registry import Feature, Patcher, Probe, _Engine, is_wrapper

pytestmark = [
    pytest.mark.unit,
    pytest.mark.skipif(
        os.environ.get("LIVEKIT_EXT_DISABLE") == "1", reason="exercises the extension itself"
    ),
]


def test_import_applies_and_reports_each_feature() -> None:
    status = livekit_ext.status()
    assert status["transcript_identity"] == "patched"
    assert "speech_started_at" in status["transcript_identity"].reason
    assert is_wrapper(vars(AgentSession)["_user_input_transcribed"])
    assert "speech_started_at" in UserInputTranscribedEvent.model_fields


def test_revert_restores_the_very_same_objects_and_apply_works_again() -> None:
    livekit_ext.revert()
    originals = {
        "funnel": vars(AgentSession)["_user_input_transcribed"],
        "stt": vars(AgentActivity)["on_final_transcript"],
        "fields": UserInputTranscribedEvent.__pydantic_fields__,
    }
    assert not is_wrapper(originals["funnel"])
    assert "speech_started_at" not in UserInputTranscribedEvent.model_fields

    livekit_ext.apply()
    assert vars(AgentSession)["_user_input_transcribed"].__wrapped__ is originals["funnel"]
    livekit_ext.revert()
    livekit_ext.revert()  # idempotent
    assert vars(AgentSession)["_user_input_transcribed"] is originals["funnel"]
    assert vars(AgentActivity)["on_final_transcript"] is originals["stt"]
    assert UserInputTranscribedEvent.__pydantic_fields__ is originals["fields"]
    assert "__init__" not in vars(
        __import__("livekit.agents.llm", fromlist=["ChatMessage"]).ChatMessage
    )
    with pytest.raises(ValueError):
        UserInputTranscribedEvent(transcript="x", is_final=True).speech_started_at = 1.0  # type: ignore[attr-defined]

    livekit_ext.apply()
    livekit_ext.apply()  # idempotent: still one layer of wrapping
    wrapper = vars(AgentSession)["_user_input_transcribed"]
    assert wrapper.__wrapped__ is originals["funnel"]
    assert UserInputTranscribedEvent(transcript="x", is_final=True).speech_started_at is None  # type: ignore[attr-defined]


def test_status_after_revert_says_nothing_is_applied() -> None:
    livekit_ext.revert()
    status = livekit_ext.status()
    assert status["transcript_identity"] == "unsupported"
    assert "apply()" in status["transcript_identity"].reason


def test_a_version_outside_the_range_applies_nothing_and_warns(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    livekit_ext.revert()
    monkeypatch.setattr(_compat, "installed_version", lambda dist: "2.0.0")
    with caplog.at_level(logging.WARNING, logger="livekit_ext"):
        status = livekit_ext.apply()
    assert {s.state for s in status.values()} == {"unsupported"}
    assert "outside the supported range" in caplog.text
    assert not is_wrapper(vars(AgentSession)["_user_input_transcribed"])
    livekit_ext.revert()


class _Target:
    def first(self) -> str:
        return "first"

    def second(self) -> str:
        return "second"


class _HalfBroken(Feature):
    name = "half_broken"
    description = "wraps one method, then fails"

    def probe(self) -> Probe:
        return Probe("patchable", "test feature")

    def install(self, patcher: Patcher) -> None:
        patcher.wrap(_Target, "first", lambda w, i, a, k: "wrapped")
        raise RuntimeError("the second hook is missing")


def test_a_feature_that_fails_half_way_is_rolled_back_entirely() -> None:
    engine = _Engine()
    engine.register(_HalfBroken())
    status = engine.apply()
    assert status["half_broken"] == "unsupported"
    assert "the second hook is missing" in status["half_broken"].reason
    assert _Target().first() == "first"
    assert "first" in vars(_Target) and not is_wrapper(vars(_Target)["first"])


def test_the_disable_switch_makes_the_import_apply_nothing() -> None:
    code = (
        "import livekit_ext\n"
        "from livekit_ext._registry import is_wrapper\n"
        "from livekit.agents.voice.agent_session import AgentSession\n"
        "assert not is_wrapper(vars(AgentSession)['_user_input_transcribed'])\n"
        "print(livekit_ext.status()['transcript_identity'])\n"
    )
    env = {**os.environ, "LIVEKIT_EXT_DISABLE": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "unsupported"


def test_doctor_prints_versions_and_status(capsys: pytest.CaptureFixture[str]) -> None:
    from livekit_ext.__main__ import main

    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert f"livekit-agents {_compat.installed_version('livekit-agents')}" in out
    assert "transcript_identity: patched" in out
