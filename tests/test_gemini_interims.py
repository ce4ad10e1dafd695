"""Gemini interim input transcriptions (opt-in): forwarded only for an opted-in model, through
the real google plugin over the loopback Gemini server; and how interims are merged."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest

import livekit_ext
from livekit_ext import identity
from livekit_ext.gemini_interims import merge_interim
from livekit_ext.testing import GeminiLiveServer
from livekit_ext.testing.audio import PacedAudioInput
from livekit_ext.testing.gemini_server import (
    input_transcription,
    interim_input_transcription,
    turn_complete,
    voice_activity_start,
)
from livekit_ext.testing.sessions import gemini_realtime_session
from livekit_ext.transcript_identity.realtime_speech import REALTIME

pytestmark = pytest.mark.wire


def test_interims_merge_whole_texts_deltas_and_revisions() -> None:
    assert merge_interim("", " what is") == "what is"
    assert merge_interim("what is", "what is the") == "what is the"  # whole text so far
    assert merge_interim("what is the", " weather") == "what is the weather"  # a delta
    assert merge_interim("what is the weather", "what is") == "what is"  # a revision
    assert merge_interim("what is", "what's the") == "what's the"


async def _speak(server: GeminiLiveServer, opt_in: bool) -> list[Any]:
    async with gemini_realtime_session(server) as (session, rec):
        if opt_in:
            livekit_ext.gemini_interim_transcripts(session.llm)
        await server.send(voice_activity_start())
        await server.send(interim_input_transcription("hello"))
        await server.send(interim_input_transcription("hello there"))
        await server.send(input_transcription("Hello there."), turn_complete())
        await rec.wait_for_finals(1)
        await asyncio.sleep(0.05)
    return [(e.transcript, e.is_final, e.item_id, e.source) for e in rec.transcripts]


async def test_interims_are_forwarded_only_for_an_opted_in_model(
    gemini_live_server: GeminiLiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="livekit_ext"):
        opted = await _speak(gemini_live_server, opt_in=True)
    assert "nothing is set in the connect config" in caplog.text  # the switch says so
    item = opted[0][2]
    assert item is not None and item.startswith("GI_")
    assert opted == [
        ("hello", False, item, "realtime"),
        ("hello there", False, item, "realtime"),
        ("Hello there.", False, item, "realtime"),
        ("Hello there.", True, item, "realtime"),
    ]
    stock = await _speak(gemini_live_server, opt_in=False)
    assert [(t, f) for t, f, _, _ in stock] == [("Hello there.", False), ("Hello there.", True)]


async def _start_heard_0_3s_into_the_audio(
    server: GeminiLiveServer, *, opt_in: bool, first: dict[str, Any], rest: list[dict[str, Any]]
) -> Any:
    """Audio flows for 0.6 s+, then ``first`` (saying speech began 0.3 s into the audio) and
    ``rest``: every event's speech start is when the session pushed that audio (its own
    timeline, the mapping unit-tested in test_units.py; on a loaded machine pushes lag the
    microphone), not ``first``'s arrival."""
    mic = PacedAudioInput(sample_rate=16000)
    async with gemini_realtime_session(server, audio=mic) as (session, rec):
        if opt_in:
            livekit_ext.gemini_interim_transcripts(session.llm)
        # the plugin writes the message key snake_case (see the scenario runner)
        await server.wait_until(
            lambda: (
                sum("realtime_input" in e or "realtimeInput" in e for e in server.client_events)
                >= 5
            )
        )
        await asyncio.sleep(0.6)
        await server.send(first)
        arrival = time.time()
        await server.send(*rest)
        await rec.wait_for_finals(1)
        rt_session = session._activity._rt_session
        expected = REALTIME.of(rt_session).timeline.wall_time_at(0.3)
        if expected is None:  # the extension is off: upstream maps the offset (patches/)
            expected = rt_session._input_audio_timeline.wall_time_at(0.3)
    start = identity(rec.finals[0]).speech_started_at
    assert start is not None and expected is not None
    assert abs(start - expected) < 0.01, (start, expected)
    assert arrival - start > 0.25  # at least 0.3 s of pushed audio lay between
    assert {identity(e).speech_started_at for e in rec.transcripts} == {start}


async def test_an_interims_start_offset_is_the_speech_start_when_no_voice_activity_came(
    gemini_live_server: GeminiLiveServer,
) -> None:
    """``Transcription.start_offset`` (audio time) mapped onto the wall clock through the audio
    the session pushed: far earlier than the interim's arrival."""
    await _start_heard_0_3s_into_the_audio(
        gemini_live_server,
        opt_in=True,
        first=interim_input_transcription("hello", start_offset="0.300s"),
        rest=[input_transcription("Hello."), turn_complete()],
    )


async def test_a_final_transcriptions_start_offset_is_the_speech_start_without_opting_in(
    gemini_live_server: GeminiLiveServer,
) -> None:
    """Any Gemini model: ``inputTranscription.startOffset`` of a new utterance is its start."""
    message = input_transcription("Hello.")
    message["serverContent"]["inputTranscription"]["startOffset"] = "0.300s"
    await _start_heard_0_3s_into_the_audio(
        gemini_live_server, opt_in=False, first=message, rest=[turn_complete()]
    )
