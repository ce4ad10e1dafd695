"""The patch engine: idempotent apply, exact revert, status, the off switch, bad versions."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from typing import Any

import pytest
from livekit.agents.voice.agent_activity import AgentActivity
from livekit.agents.voice.agent_session import AgentSession
from livekit.agents.voice.events import UserInputTranscribedEvent
from livekit.plugins import openai  # noqa: F401  (its features are decided on import)

import livekit_ext
from livekit_ext import _compat
from livekit_ext import _touchpoints as tp
from livekit_ext._engine import ENGINE, Feature, Probe, _Engine
from livekit_ext._wrapping import Patcher, install_when_needed, is_wrapper

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


def test_status_after_revert_says_disabled_and_how_to_apply_again() -> None:
    livekit_ext.revert()
    status = livekit_ext.status()
    assert status["transcript_identity"] == "disabled"
    assert "apply()" in status["transcript_identity"].reason


def test_reverting_a_feature_reverts_the_features_that_require_it() -> None:
    livekit_ext.revert("transcript_identity")
    status = livekit_ext.status()
    assert status["transcript_identity"] == "disabled"
    assert status["parallel_stt"] == "disabled"  # it requires transcript_identity
    assert not is_wrapper(vars(AgentActivity)["_on_error"])
    assert livekit_ext.apply("parallel_stt")["transcript_identity"] == "patched"  # with it
    assert livekit_ext.status()["parallel_stt"] == "patched"


def _fresh_apply(monkeypatch: pytest.MonkeyPatch, version: str) -> dict[str, str]:
    livekit_ext.revert()
    monkeypatch.setattr(_compat, "installed_version", lambda dist: version)
    return livekit_ext.apply()


def test_a_release_below_the_range_applies_nothing_and_warns(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="livekit_ext"):
        status = _fresh_apply(monkeypatch, "1.4.5")
    assert {s.state for s in status.values()} == {"unsupported"}
    assert "older than 1.4.6" in status["transcript_identity"].reason
    assert "older than 1.4.6" in caplog.text
    assert not is_wrapper(vars(AgentSession)["_user_input_transcribed"])
    livekit_ext.revert()


def test_a_newer_release_gets_what_holds_with_one_warning_naming_it(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    renamed = tp.wrap(
        "a simulated upstream rename",
        "livekit.agents.voice.agent_session:AgentSession._renamed_in_a_later_release",
    )
    _declare(monkeypatch, "transcript_identity", renamed)
    with caplog.at_level(logging.WARNING, logger="livekit_ext"):
        status = _fresh_apply(monkeypatch, "1.99.0")
    untested = [r for r in caplog.records if "newer than 1.8.9" in r.getMessage()]
    assert len(untested) == 1 and "1.99.0" in untested[0].getMessage()
    assert status["transcript_identity"] == "unsupported"
    assert "AgentSession._renamed_in_a_later_release" in status["transcript_identity"].reason
    assert status["parallel_stt"] == "unsupported"
    assert "needs transcript_identity" in status["parallel_stt"].reason
    assert status["azure_explicit_nulls"] == "patched"  # its touchpoints all hold
    assert not is_wrapper(vars(AgentSession)["_user_input_transcribed"])
    livekit_ext.revert()


def test_strict_mode_applies_nothing_to_an_untested_release(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LIVEKIT_EXT_STRICT", "1")
    status = _fresh_apply(monkeypatch, "1.9.0")
    assert {s.state for s in status.values()} == {"unsupported"}
    assert "LIVEKIT_EXT_STRICT=1" in status["parallel_stt"].reason
    livekit_ext.revert()


class _Target:
    def first(self) -> str:
        return "first"

    def second(self) -> str:
        return "second"


class _Plain(Feature):
    name = "plain"
    description = "wraps nothing at install"

    def probe(self) -> Probe:
        return Probe("patchable", "test feature")

    def install(self, patcher: Patcher) -> None:
        pass


class _HalfBroken(_Plain):
    name = "half_broken"
    description = "wraps one method, then fails"

    def install(self, patcher: Patcher) -> None:
        patcher.wrap(tp.wrap("a test's", f"{__name__}:_Target.first"), lambda w, i, a, k: "wrapped")
        raise RuntimeError("the second hook is missing")


def test_a_feature_that_fails_half_way_is_rolled_back_entirely() -> None:
    engine = _Engine()
    engine.register(_HalfBroken())
    engine.apply()
    status = engine.status()
    assert status["half_broken"] == "unsupported"
    assert "the second hook is missing" in status["half_broken"].reason
    assert _Target().first() == "first"
    assert "first" in vars(_Target) and not is_wrapper(vars(_Target)["first"])


def _needed_second(original: Any) -> Any:
    def second(self: Any) -> str:
        return "needed " + str(original(self))

    return second


SECOND = tp.wrap("a test's", f"{__name__}:_Target.second")


def test_a_wrapper_installed_when_needed_goes_in_once_and_out_with_its_feature() -> None:
    engine = _Engine()
    engine.register(_Plain())
    engine.apply()
    assert _Target().second() == "second"
    install_when_needed("plain", SECOND, _needed_second)
    install_when_needed("plain", SECOND, _needed_second)
    assert _Target().second() == "needed second"  # one layer
    engine.revert()
    assert _Target().second() == "second" and not is_wrapper(vars(_Target)["second"])
    install_when_needed("plain", SECOND, _needed_second)
    assert _Target().second() == "second"  # not in effect: nothing goes in
    engine.apply()
    install_when_needed("plain", SECOND, _needed_second)
    assert _Target().second() == "needed second"
    engine.revert()
    assert _Target().second() == "second"


def test_apply_leaves_the_hooks_only_stt_turns_need_to_the_first_such_turn() -> None:
    """A realtime session builds a user ChatMessage per utterance and adds it to the
    conversation: it must not pay a call each for the STT pipeline's and parallel STT's
    hooks there (the STT scenarios and parallel-STT tests show them installed when needed)."""
    from livekit.agents import llm

    livekit_ext.revert()
    livekit_ext.apply()
    assert livekit_ext.status()["parallel_stt"] == "patched"
    assert "__init__" not in vars(llm.ChatMessage)
    assert not is_wrapper(vars(AgentSession)["_conversation_item_added"])


def test_a_probe_that_fails_makes_its_feature_unsupported_never_patched(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from livekit_ext.azure import probes

    def broken() -> None:
        raise AttributeError("'RealtimeSession' object has no attribute '_renamed'")

    monkeypatch.setattr(probes, "find_gaps", broken)
    monkeypatch.setattr(probes._probe_state(), "found", None)
    status = livekit_ext.status()["azure_explicit_nulls"]
    assert status == "unsupported"
    assert status.reason.startswith("probe failed: AttributeError")
    monkeypatch.undo()
    assert livekit_ext.status()["azure_explicit_nulls"] == "patched"


def _run(code: str, **env: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_the_disable_switch_makes_the_import_apply_nothing() -> None:
    code = (
        "import livekit_ext\n"
        "from livekit_ext._wrapping import is_wrapper\n"
        "from livekit.agents.voice.agent_session import AgentSession\n"
        "assert not is_wrapper(vars(AgentSession)['_user_input_transcribed'])\n"
        "s = livekit_ext.status()['transcript_identity']\n"
        "print(s, s.reason)\n"
    )
    assert _run(code, LIVEKIT_EXT_DISABLE="1").startswith("disabled LIVEKIT_EXT_DISABLE=1")


def test_the_import_imports_no_livekit_module() -> None:
    code = "import sys, livekit_ext\nprint([m for m in sys.modules if m.startswith('livekit.')])"
    assert _run(code) == "[]"


def test_an_openai_only_agent_never_imports_the_google_plugin() -> None:
    code = (
        "import sys, livekit_ext\n"
        "from livekit.plugins import openai\n"
        "s = livekit_ext.status()\n"
        "assert s['azure_explicit_nulls'] in ('patched', 'native'), s\n"
        "print(sorted({m.split('.')[2] for m in sys.modules if m.startswith('livekit.plugins.')}))"
    )
    assert _run(code) == "['openai']"


def test_a_plugin_imported_after_livekit_ext_is_patched_on_import() -> None:
    code = (
        "import sys, livekit_ext\n"
        "from livekit_ext._wrapping import is_wrapper\n"
        "print(livekit_ext.status()['malformed_frames'].state)\n"
        "livekit_ext.revert(); livekit_ext.apply()  # a stale hook must not wrap twice\n"
        "from livekit.plugins import google\n"
        "from livekit.plugins.google.realtime.realtime_api import RealtimeSession\n"
        "wrapper = vars(RealtimeSession)['_start_new_generation']  # transcript_identity's\n"
        "print(is_wrapper(wrapper) and not is_wrapper(wrapper.__wrapped__))\n"
        "assert 'livekit.plugins.openai' not in sys.modules\n"
        "from livekit.plugins import openai\n"
        "print(livekit_ext.status()['malformed_frames'].state)\n"
    )
    assert _run(code).split() == ["unsupported", "True", "patched"]


def test_a_gemini_only_agent_gets_the_gemini_frame_guard() -> None:
    """The Gemini guard is its own feature, decided when the google plugin is imported: an
    agent that never imports the OpenAI plugin has it (and imports no OpenAI plugin for it)."""
    code = (
        "import sys, livekit.agents, livekit.plugins.google, livekit_ext\n"
        "from livekit_ext._wrapping import is_wrapper\n"
        "from livekit.plugins.google.realtime.realtime_api import RealtimeSession\n"
        "def wrappers():\n"
        "    f, n = vars(RealtimeSession)['_recv_task'], 0\n"
        "    while is_wrapper(f):\n"
        "        f, n = f.__wrapped__, n + 1\n"
        "    return n\n"
        "s = livekit_ext.status()\n"
        "before = wrappers()\n"
        "livekit_ext.revert('gemini_malformed_frames')\n"
        "print(s['gemini_malformed_frames'].state, s['malformed_frames'].state,\n"
        "      before - wrappers(), 'livekit.plugins.openai' in sys.modules)\n"
    )
    assert _run(code).split() == ["patched", "unsupported", "1", "False"]


def test_doctor_exits_non_zero_when_a_needed_feature_is_unsupported(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from livekit_ext.__main__ import main

    gone = tp.wrap(
        "a simulated upstream rename",
        "livekit.plugins.openai.realtime.realtime_model:RealtimeSession._gone",
    )
    livekit_ext.revert()
    _declare(monkeypatch, "malformed_frames", gone)
    livekit_ext.apply()
    assert main(["doctor"]) == 1
    assert "malformed_frames: unsupported (missing upstream touchpoint" in capsys.readouterr().out
    livekit_ext.revert()


def test_doctor_prints_versions_and_status(capsys: pytest.CaptureFixture[str]) -> None:
    from livekit_ext.__main__ import main

    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert f"livekit-agents {_compat.installed_version('livekit-agents')}" in out
    assert "transcript_identity: patched" in out


def _declare(monkeypatch: pytest.MonkeyPatch, feature: str, touchpoint: tp.Touchpoint) -> None:
    """One more touchpoint declared by ``feature`` (as a later release would lack)."""
    owner = next(f for f in ENGINE.features() if f.name == feature)
    monkeypatch.setattr(type(owner), "touchpoints", (*owner.touchpoints, touchpoint))
