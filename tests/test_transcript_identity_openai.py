"""Transcript identity through the real OpenAI realtime plugin over a loopback socket."""

from __future__ import annotations

import asyncio
import gc
import os
import time

import pytest

import livekit_ext
from livekit_ext import identity
from livekit_ext.testing import OpenAIRealtimeServer
from livekit_ext.testing import openai_server as oai
from livekit_ext.testing.audio import PacedAudioInput
from livekit_ext.testing.sessions import openai_realtime_session

pytestmark = pytest.mark.wire
EXTENSION_DISABLED = os.environ.get("LIVEKIT_EXT_DISABLE") == "1"


def _by_item(events: list, item_id: str) -> list:
    return [e for e in events if identity(e).item_id == item_id]


async def test_every_event_of_one_utterance_carries_its_item_and_start(
    openai_realtime_server: OpenAIRealtimeServer,
) -> None:
    server = openai_realtime_server
    async with openai_realtime_session(server) as (_, rec):
        before = time.time()
        await server.send(oai.speech_started("item_A", 120))
        await asyncio.sleep(0.2)
        await server.send(
            oai.speech_stopped("item_A", 900),
            oai.transcription_delta("item_A", "call me"),
            oai.transcription_delta("item_A", " back"),
            oai.transcription_completed("item_A", "call me back"),
        )
        await rec.wait_for_finals(1)

    events = rec.transcripts
    assert events[0].transcript == ""  # the speech-stop interim
    assert {identity(e).item_id for e in events} == {"item_A"}
    assert {identity(e).source for e in events} == {"realtime"}
    starts = {identity(e).speech_started_at for e in events}
    assert len(starts) == 1
    (start,) = starts
    assert start is not None
    # no audio flowed, so the best source is the arrival of speech_started (a loopback hop)
    assert before <= start <= before + 0.1
    assert all(start <= e.created_at for e in events)
    assert events[0].created_at - start >= 0.15


async def test_two_utterances_back_to_back_never_share_an_item(
    openai_realtime_server: OpenAIRealtimeServer,
) -> None:
    server = openai_realtime_server
    async with openai_realtime_session(server) as (_, rec):
        for item, text in (("item_A", "first"), ("item_B", "second")):
            await server.send(
                oai.speech_started(item),
                oai.speech_stopped(item),
                oai.transcription_delta(item, text),
                oai.transcription_completed(item, text),
            )
            await asyncio.sleep(0.05)
        await rec.wait_for_finals(2)

    a, b = _by_item(rec.transcripts, "item_A"), _by_item(rec.transcripts, "item_B")
    assert a and b and len(a) + len(b) == len(rec.transcripts)
    assert [e.transcript for e in a if e.is_final] == ["first"]
    assert [e.transcript for e in b if e.is_final] == ["second"]
    start_a = {identity(e).speech_started_at for e in a}
    start_b = {identity(e).speech_started_at for e in b}
    assert len(start_a) == len(start_b) == 1
    assert start_a.pop() < start_b.pop()  # type: ignore[operator]


async def test_a_late_transcript_keeps_its_own_utterance_start(
    openai_realtime_server: OpenAIRealtimeServer,
) -> None:
    server = openai_realtime_server
    async with openai_realtime_session(server) as (_, rec):
        await server.send(oai.speech_started("item_A"), oai.speech_stopped("item_A"))
        await asyncio.sleep(0.3)
        await server.send(oai.speech_started("item_B"))
        await asyncio.sleep(0.3)
        # A's transcript only arrives now, after B began
        await server.send(
            oai.transcription_delta("item_A", "late"),
            oai.transcription_completed("item_A", "late words"),
            oai.speech_stopped("item_B"),
            oai.transcription_completed("item_B", "on time"),
        )
        await rec.wait_for_finals(2)

    final_a = next(e for e in rec.finals if e.transcript == "late words")
    final_b = next(e for e in rec.finals if e.transcript == "on time")
    assert identity(final_a).item_id == "item_A"
    assert identity(final_b).item_id == "item_B"
    start_a, start_b = identity(final_a).speech_started_at, identity(final_b).speech_started_at
    assert start_a is not None and start_b is not None
    assert start_b - start_a >= 0.25  # 0.3 s apart, less an early timer
    assert final_a.created_at - start_a >= 0.55


async def test_speech_start_is_mapped_from_the_audio_offset_when_audio_flows(
    openai_realtime_server: OpenAIRealtimeServer,
) -> None:
    server = openai_realtime_server
    mic = PacedAudioInput(sample_rate=24000)
    async with openai_realtime_session(server, audio=mic) as (_, rec):
        await server.wait_for_client_event("input_audio_buffer.append", count=5)
        # the server reports speech 0.3 s into the audio it received; it says so late
        await asyncio.sleep(0.6)
        await server.send(oai.speech_started("item_A", audio_start_ms=300))
        arrival = time.time()
        await server.send(oai.speech_stopped("item_A", 800))
        await server.send(oai.transcription_completed("item_A", "hello"))
        await rec.wait_for_finals(1)

    start = identity(rec.finals[0]).speech_started_at
    expected = mic.wall_time_at(0.3)
    assert start is not None and expected is not None
    assert abs(start - expected) < 0.12, (start, expected)
    assert arrival - start > 0.5  # far better than the arrival of the event


async def test_a_repeated_completed_keeps_the_same_identity(
    openai_realtime_server: OpenAIRealtimeServer,
) -> None:
    server = openai_realtime_server
    async with openai_realtime_session(server) as (session, rec):
        utterances = livekit_ext.Utterances(session)
        finals: list[livekit_ext.Utterance] = []
        started: list[livekit_ext.Utterance] = []
        utterances.on("utterance_final", finals.append)
        utterances.on("utterance_started", started.append)
        await server.send(
            oai.speech_started("item_A"),
            oai.speech_stopped("item_A"),
            oai.transcription_completed("item_A", "yes"),
            oai.transcription_completed("item_A", "yes"),
            oai.transcription_delta("item_A", " straggler"),
        )
        await rec.wait_for_finals(2)
        await asyncio.sleep(0.05)

    assert [identity(e).item_id for e in rec.finals] == ["item_A", "item_A"]
    assert len({identity(e).speech_started_at for e in rec.transcripts}) == 1
    assert [u.item_id for u in started] == ["item_A"]
    assert [(u.item_id, u.transcript, u.final) for u in finals] == [("item_A", "yes", True)]


async def test_a_reconnect_starts_a_fresh_audio_timeline(
    openai_realtime_server: OpenAIRealtimeServer,
) -> None:
    server = openai_realtime_server
    async with openai_realtime_session(server) as (_, rec):
        await server.send(
            oai.speech_started("item_A"), oai.transcription_completed("item_A", "one")
        )
        await rec.wait_for_finals(1)
        await server.drop()
        await server.wait_for_connection(2, timeout=15)
        await server.wait_for_client_event("session.update", count=2, timeout=15)
        await server.send(
            oai.speech_started("item_B"), oai.transcription_completed("item_B", "two")
        )
        await rec.wait_for_finals(2)

    assert [identity(e).item_id for e in rec.finals] == ["item_A", "item_B"]
    assert all(identity(e).speech_started_at is not None for e in rec.finals)


async def test_after_a_reconnect_audio_offsets_count_from_the_new_connection(
    openai_realtime_server: OpenAIRealtimeServer,
) -> None:
    """The server counts audio offsets from zero on each connection: an offset heard after a
    reconnect maps onto the audio pushed since then, never onto the first connection's."""
    server = openai_realtime_server
    mic = PacedAudioInput(sample_rate=24000)
    async with openai_realtime_session(server, audio=mic) as (_, rec):
        await server.wait_for_client_event("input_audio_buffer.append", count=5)
        await asyncio.sleep(0.6)  # the first connection hears 0.6 s+ of audio
        dropped = time.time()
        await server.drop()
        conn = await server.wait_for_connection(2, timeout=15)
        await server.wait_until(
            lambda: (
                sum(e.get("type") == "input_audio_buffer.append" for e in conn.client_events) >= 5
            ),
            timeout=15,
        )
        await asyncio.sleep(0.3)
        # 0.1 s into the new connection's audio: after the drop (on the first connection's
        # timeline it would be 0.1 s into the session, long before)
        await server.send(
            oai.speech_started("item_B", audio_start_ms=100),
            oai.transcription_completed("item_B", "again"),
        )
        await rec.wait_for_finals(1)

    start = identity(rec.finals[0]).speech_started_at
    assert start is not None
    assert start > dropped, (start, dropped)


async def test_no_origin_outlives_the_handler_that_emitted_its_transcript(
    openai_realtime_server: OpenAIRealtimeServer,
) -> None:
    """Upstream's handlers start timers (the user-away timer) while they emit a transcript:
    where a transcript was born must not be captured by them (it would keep its track alive
    and be handed to whatever they emit later)."""
    from livekit_ext._funnel import Origin

    server = openai_realtime_server
    async with openai_realtime_session(server) as (_, rec):
        for n in range(5):
            item = f"item_{n}"
            await server.send(
                oai.speech_started(item),
                oai.speech_stopped(item, 500),
                oai.transcription_delta(item, "some"),
                oai.transcription_completed(item, "some words"),
            )
            await rec.wait_for_finals(n + 1)
        gc.collect()
        alive = [o for o in gc.get_objects() if isinstance(o, Origin)]
        assert alive == []
    assert all(identity(e).item_id is not None for e in rec.transcripts)


@pytest.mark.skipif(EXTENSION_DISABLED, reason="exercises the extension itself")
async def test_revert_then_apply_switches_the_enrichment_off_and_on(
    openai_realtime_server: OpenAIRealtimeServer,
) -> None:
    server = openai_realtime_server
    livekit_ext.revert()
    async with openai_realtime_session(server) as (_, rec):
        await server.send(oai.speech_started("item_A"), oai.transcription_completed("item_A", "a"))
        await rec.wait_for_finals(1)
    assert not hasattr(rec.finals[0], "speech_started_at")
    assert not hasattr(rec.finals[0], "source")

    livekit_ext.apply()
    async with openai_realtime_session(server) as (_, rec):
        await server.send(oai.speech_started("item_B"), oai.transcription_completed("item_B", "b"))
        await rec.wait_for_finals(1)
    assert identity(rec.finals[0]) == (
        "item_B",
        identity(rec.finals[0]).speech_started_at,
        "realtime",
    )
    assert identity(rec.finals[0]).speech_started_at is not None


async def test_transcripts_read_late_for_the_first_time_holds_what_came_before(
    openai_realtime_server: OpenAIRealtimeServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A function tool that reads ``transcripts(session)`` first at the second utterance."""
    server = openai_realtime_server
    async with openai_realtime_session(server) as (session, rec):
        for item, text in (("item_A", "my name is"), ("item_B", "ada")):
            await server.send(oai.speech_started(item), oai.transcription_completed(item, text))
        await rec.wait_for_finals(2)
        with caplog.at_level("WARNING", logger="livekit_ext"):
            log = livekit_ext.transcripts(session)
        if EXTENSION_DISABLED:  # upstream alone: the log starts now, and says so
            assert len(log) == 0
            assert "records from now on" in caplog.text
            return
        assert [e.transcript for e in log] == ["my name is", "ada"]
        assert [e.transcript for e in log.for_item("item_A")] == ["my name is"]
        assert log.latest(source="realtime") is rec.finals[1]
        await server.send(oai.speech_started("item_C"), oai.transcription_completed("item_C", "!"))
        await rec.wait_for_finals(3)
        assert log.latest() is rec.finals[2] and len(log) == 3


@pytest.mark.skipif(EXTENSION_DISABLED, reason="exercises the extension itself")
async def test_a_session_started_before_apply_is_named_in_a_warning_when_it_misses_out(
    openai_realtime_server: OpenAIRealtimeServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Upstream binds its realtime handlers when the session starts: a session started while
    the extension was off cannot be enriched later, and says so at its first transcript."""
    server = openai_realtime_server
    livekit_ext.revert()
    async with openai_realtime_session(server) as (session, rec):
        livekit_ext.apply()
        with caplog.at_level("WARNING", logger="livekit_ext"):
            for item in ("item_A", "item_B"):
                await server.send(oai.speech_started(item), oai.transcription_completed(item, "x"))
            await rec.wait_for_finals(2)
        assert identity(rec.finals[0]).source is None
        assert livekit_ext.transcripts(session).latest() is rec.finals[1]  # still logged
    warnings = [r.getMessage() for r in caplog.records if "before livekit_ext" in r.getMessage()]
    assert len(warnings) == 1  # once per session
    assert (
        f"AgentSession {id(session):#x} was started before livekit_ext was applied" in (warnings[0])
    )


@pytest.mark.parametrize("api_version", [None, "2025-08-28"], ids=["ga-v1", "ga-dated"])
async def test_azure_realtime_sessions_carry_the_identity_too(
    openai_realtime_server: OpenAIRealtimeServer, api_version: str | None
) -> None:
    from livekit.agents import AgentSession
    from livekit.plugins import openai

    from livekit_ext.testing.sessions import running_session

    server = openai_realtime_server
    model = openai.realtime.RealtimeModel.with_azure(
        azure_deployment="gpt-realtime",
        azure_endpoint=server.azure_endpoint,
        api_key="test",
        api_version=api_version,
    )
    session: AgentSession = AgentSession(llm=model)  # type: ignore[type-arg]
    try:
        async with running_session(session) as rec:
            await server.wait_for_client_event("session.update")
            assert "/openai/" in server.connection.path  # the Azure path, not /v1/realtime
            await server.send(oai.speech_started("item_Z"), oai.speech_stopped("item_Z"))
            await server.send(oai.transcription_completed("item_Z", "hallo"))
            await rec.wait_for_finals(1)
    finally:
        await model.aclose()
    assert {identity(e).item_id for e in rec.transcripts} == {"item_Z"}
    assert {identity(e).source for e in rec.transcripts} == {"realtime"}
    assert len({identity(e).speech_started_at for e in rec.transcripts}) == 1


async def test_speech_started_at_is_where_upstream_places_the_user_message(
    openai_realtime_server: OpenAIRealtimeServer,
) -> None:
    """On releases whose realtime transcripts carry ``turn_started_at`` (1.6.10+), upstream
    places the user ``ChatMessage`` at the start of speech: ``created_at`` and the utterance's
    ``speech_started_at`` are the same instant (the extension's own reading of the speech
    start and upstream's are microseconds apart; the series passes upstream's value on)."""
    from livekit.agents import llm

    if "turn_started_at" not in llm.InputTranscriptionCompleted.__dataclass_fields__:
        pytest.skip("this release places the user message where its transcript arrived")
    server = openai_realtime_server
    async with openai_realtime_session(server) as (session, rec):
        await server.send(oai.speech_started("item_A", 400))
        await asyncio.sleep(0.2)  # the transcript comes well after the start
        await server.send(
            oai.speech_stopped("item_A", 900), oai.transcription_completed("item_A", "hi")
        )
        await rec.wait_for_finals(1)
        await asyncio.sleep(0.05)
        messages = [m for m in session.history.messages() if m.role == "user"]
    (message,) = messages
    started = identity(rec.finals[0]).speech_started_at
    assert message.id == "item_A" and started is not None
    assert abs(message.created_at - started) < 1e-3, (message.created_at, started)
    assert rec.finals[0].created_at - started > 0.15
