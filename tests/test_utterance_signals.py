"""``Utterances`` at the provider's speech start and stop: the seam (per-session speech signals)
on its own, then through the real OpenAI plugin over the loopback server."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest
from livekit import rtc
from livekit.agents.voice.events import UserInputTranscribedEvent

import livekit_ext
from livekit_ext._speech import speech_of
from livekit_ext.testing import gemini_server as gmn
from livekit_ext.testing import openai_server as oai
from livekit_ext.testing.gemini_server import GeminiLiveServer
from livekit_ext.testing.openai_server import OpenAIRealtimeServer
from livekit_ext.testing.sessions import gemini_realtime_session, openai_realtime_session

pytestmark = pytest.mark.unit


class _FakeSession(rtc.EventEmitter[str]):
    pass


def _event(item: str | None, text: str, final: bool, started: float = 1.0) -> Any:
    ev = UserInputTranscribedEvent(transcript=text, is_final=final)
    ev.item_id = item
    ev.source = "realtime"  # type: ignore[attr-defined]
    ev.speech_started_at = started  # type: ignore[attr-defined]
    return ev


def _watch(utterances: Any) -> list[tuple[str, str, str, float | None, float | None]]:
    calls: list[tuple[str, str, str, float | None, float | None]] = []
    for name in ("utterance_started", "utterance_updated", "utterance_stopped", "utterance_final"):
        utterances.on(
            name,
            lambda u, name=name: calls.append(
                (name, u.item_id, u.transcript, u.speech_started_at, u.speech_stopped_at)
            ),
        )
    return calls


def _signal(session: Any, kind: str, item: str | None, at: float, origin: str = "openai") -> None:
    speech_of(session).publish(
        kind,
        item,
        at,
        origin,  # type: ignore[arg-type]
    )


def test_started_fires_at_the_speech_start_once_and_never_after_the_first_transcript() -> None:
    session = _FakeSession()
    calls = _watch(livekit_ext.Utterances(session))
    _signal(session, "started", "a", 1.0)
    _signal(session, "started", "a", 1.5)  # a repeated start of the same item
    _signal(session, "stopped", "a", 2.0)
    _signal(session, "stopped", "a", 2.5)  # and a repeated stop
    session.emit("user_input_transcribed", _event("a", "", False))
    session.emit("user_input_transcribed", _event("a", "hi", True))
    session.emit("user_input_transcribed", _event("b", "yo", False, started=3.0))
    _signal(session, "started", "b", 3.0)  # its transcript came first: no second start
    assert calls == [
        ("utterance_started", "a", "", 1.0, None),
        ("utterance_stopped", "a", "", 1.0, 2.0),
        ("utterance_final", "a", "hi", 1.0, 2.0),
        ("utterance_started", "b", "", 3.0, None),
        ("utterance_updated", "b", "yo", 3.0, None),
    ]


def test_a_stop_no_source_could_name_goes_to_the_utterance_speaking_or_the_next() -> None:
    """The framework's generic ``input_speech_stopped`` carries no item id."""
    session = _FakeSession()
    calls = _watch(livekit_ext.Utterances(session))
    _signal(session, "started", None, 1.0, origin="realtime")  # unnamed: nothing to fire yet
    _signal(session, "stopped", None, 2.0, origin="realtime")
    session.emit("user_input_transcribed", _event("a", "one", True))
    session.emit("user_input_transcribed", _event("b", "tw", False))
    _signal(session, "stopped", None, 4.0, origin="realtime")
    assert calls == [
        ("utterance_started", "a", "", 1.0, None),
        ("utterance_stopped", "a", "", 1.0, 2.0),
        ("utterance_final", "a", "one", 1.0, 2.0),
        ("utterance_started", "b", "", 1.0, None),
        ("utterance_updated", "b", "tw", 1.0, None),
        ("utterance_stopped", "b", "tw", 1.0, 4.0),
    ]


def test_a_view_of_one_source_ignores_the_other_engines_signals() -> None:
    session = _FakeSession()
    calls = _watch(livekit_ext.Utterances(session, source="realtime"))
    _signal(session, "started", "turn", 1.0, origin="stt")
    _signal(session, "started", "a", 1.0, origin="gemini")
    assert [c[:2] for c in calls] == [("utterance_started", "a")]


def test_close_unsubscribes_and_the_publisher_holds_no_utterances_alive() -> None:
    import gc
    import weakref

    session = _FakeSession()
    utterances = livekit_ext.Utterances(session)
    calls = _watch(utterances)
    utterances.close()
    _signal(session, "started", "a", 1.0)
    assert calls == []
    other = livekit_ext.Utterances(_FakeSession())
    ref = weakref.ref(other)
    del other
    gc.collect()
    assert ref() is None


def test_an_empty_interim_without_item_id_is_skipped_quietly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """AWS Nova Sonic's speech-stop interim has no item id: not a sign the extension is off."""
    session = _FakeSession()
    calls = _watch(livekit_ext.Utterances(session))
    with caplog.at_level(logging.DEBUG, logger="livekit_ext"):
        session.emit("user_input_transcribed", _event(None, "", False))
    assert calls == []
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "empty interim without item_id" in caplog.text
    with caplog.at_level(logging.WARNING, logger="livekit_ext"):
        session.emit("user_input_transcribed", _event(None, "words", False))
    assert "is livekit_ext applied?" in caplog.text  # text without an id still says so


@pytest.mark.wire
async def test_openai_utterance_started_fires_at_speech_started_not_after_the_transcript(
    openai_realtime_server: OpenAIRealtimeServer,
) -> None:
    """The issue's measurement: speech_started sent, then silence from the server (server VAD
    sends every transcript after speech stops): utterance_started has fired meanwhile."""
    server = openai_realtime_server
    async with openai_realtime_session(server) as (session, rec):
        utterances = livekit_ext.Utterances(session)
        calls = _watch(utterances)
        sent = time.time()
        await server.send(oai.speech_started("item_A"))
        deadline = time.monotonic() + 5
        while not calls and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        assert calls and calls[0][:3] == ("utterance_started", "item_A", "")
        started_at = calls[0][3]
        assert started_at is not None and sent - 0.05 <= started_at <= time.time()
        await asyncio.sleep(0.3)
        assert len(calls) == 1 and rec.transcripts == []  # nothing else yet: no transcript
        await server.send(oai.speech_stopped("item_A", 300))
        await server.send(oai.transcription_completed("item_A", "hello"))
        await rec.wait_for_finals(1)
    assert [c[0] for c in calls] == ["utterance_started", "utterance_stopped", "utterance_final"]
    assert all(c[1] == "item_A" and c[3] == started_at for c in calls)


@pytest.mark.wire
async def test_gemini_utterance_started_fires_at_voice_activity_not_after_the_transcript(
    gemini_live_server: GeminiLiveServer,
) -> None:
    """Gemini's voiceActivity ACTIVITY_START, then silence from the server: utterance_started
    has fired meanwhile, under the id (reserved then) that the turn's transcripts carry."""
    server = gemini_live_server
    async with gemini_realtime_session(server) as (session, rec):
        calls = _watch(livekit_ext.Utterances(session))
        sent = time.time()
        await server.send(gmn.voice_activity_start())
        deadline = time.monotonic() + 5
        while not calls and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        assert calls and calls[0][0] == "utterance_started" and calls[0][2] == "", calls
        item_id, started_at = calls[0][1], calls[0][3]
        assert item_id and started_at is not None and sent - 0.05 <= started_at <= time.time()
        await asyncio.sleep(0.3)
        assert len(calls) == 1 and rec.transcripts == []  # nothing else yet: no transcript
        await server.send(gmn.input_transcription("hello"), gmn.turn_complete())
        await rec.wait_for_finals(1)
    assert rec.finals[0].item_id == item_id
    assert calls[-1][0] == "utterance_final" and calls[-1][2].strip() == "hello"
    assert [c[0] for c in calls].count("utterance_started") == 1
    assert all(c[1] == item_id and c[3] == started_at for c in calls)


@pytest.mark.wire
async def test_utterances_keep_seeing_transcripts_when_the_extension_is_reverted(
    openai_realtime_server: OpenAIRealtimeServer,
) -> None:
    """Utterances observes a session's transcripts at our funnel; once reverted the funnel is
    upstream's again, and the session's emit is observed instead: nothing goes unseen (on
    releases whose events carry item_id themselves, an utterance after revert still fires)."""
    server = openai_realtime_server
    try:
        async with openai_realtime_session(server) as (session, rec):
            calls = _watch(livekit_ext.Utterances(session))
            await server.send(oai.transcription_completed("item_A", "before"))
            await rec.wait_for_finals(1)
            livekit_ext.revert()
            native_item_id = "item_id" in UserInputTranscribedEvent.model_fields
            await server.send(oai.transcription_completed("item_B", "after"))
            await rec.wait_for_finals(2)
    finally:
        livekit_ext.apply()
    finals = [(c[1], c[2]) for c in calls if c[0] == "utterance_final"]
    expected = [("item_A", "before")] + ([("item_B", "after")] if native_item_id else [])
    assert finals == expected
