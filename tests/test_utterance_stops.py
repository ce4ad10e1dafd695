"""Every utterance has one ``utterance_started``, one ``utterance_stopped`` and one
``utterance_final``, in that order, on every path: where the provider sends no stop (Gemini
without ``voiceActivity``), the stop is inferred and ``speech_stopped_by`` names the evidence."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from livekit_ext.testing import GeminiLiveServer, OpenAIRealtimeServer
from livekit_ext.testing import gemini_server as gem
from livekit_ext.testing import openai_server as oai
from livekit_ext.testing.sessions import gemini_realtime_session, openai_realtime_session

pytestmark = pytest.mark.wire


def _lifecycle(rec: Any) -> list[tuple[str, str, str | None]]:
    return [
        (name, u.item_id, u.speech_stopped_by)
        for name, u in rec.utterances
        if name != "utterance_updated"
    ]


def _each_once_in_order(rec: Any) -> None:
    by_item: dict[str, list[str]] = {}
    for name, u in rec.utterances:
        if name != "utterance_updated":
            by_item.setdefault(u.item_id, []).append(name)
    for item, names in by_item.items():
        assert names == ["utterance_started", "utterance_stopped", "utterance_final"], item
    for name, u in rec.utterances:
        if name == "utterance_final":
            assert u.speech_stopped_at is not None and u.speech_stopped_at <= u.event.created_at


async def test_gemini_without_voice_activity_stops_when_the_model_answers(
    gemini_live_server: GeminiLiveServer,
) -> None:
    async with gemini_realtime_session(gemini_live_server) as (session, rec):
        rec.watch_utterances(session)
        await gemini_live_server.send(gem.input_transcription("book a table"))
        await asyncio.sleep(0.2)
        await gemini_live_server.send(gem.output_transcription("Sure."))
        await asyncio.sleep(0.2)
        await gemini_live_server.send(gem.generation_complete(), gem.turn_complete())
        await rec.wait_for_finals(1)
        await asyncio.sleep(0.05)
    item = rec.finals[0].item_id
    assert _lifecycle(rec) == [
        ("utterance_started", item, None),
        ("utterance_stopped", item, "generation"),
        ("utterance_final", item, "generation"),
    ]
    _each_once_in_order(rec)
    stop = next(u for n, u in rec.utterances if n == "utterance_stopped")
    assert stop.speech_stopped_at < rec.finals[0].created_at - 0.15  # at the answer, not the end


async def test_gemini_without_voice_activity_or_answer_stops_at_turn_complete(
    gemini_live_server: GeminiLiveServer,
) -> None:
    async with gemini_realtime_session(gemini_live_server) as (session, rec):
        rec.watch_utterances(session)
        await gemini_live_server.send(gem.input_transcription("hmm"))
        await asyncio.sleep(0.1)
        await gemini_live_server.send(gem.turn_complete())
        await rec.wait_for_finals(1)
        await asyncio.sleep(0.05)
    item = rec.finals[0].item_id
    assert _lifecycle(rec)[1] == ("utterance_stopped", item, "turn_complete")
    _each_once_in_order(rec)


async def test_gemini_with_voice_activity_keeps_the_provider_stop(
    gemini_live_server: GeminiLiveServer,
) -> None:
    async with gemini_realtime_session(gemini_live_server) as (session, rec):
        rec.watch_utterances(session)
        await gemini_live_server.send(gem.voice_activity_start())
        await gemini_live_server.send(gem.input_transcription("hello"))
        await asyncio.sleep(0.1)
        await gemini_live_server.send(gem.voice_activity_end())
        await gemini_live_server.send(gem.output_transcription("Hi."), gem.turn_complete())
        await rec.wait_for_finals(1)
        await asyncio.sleep(0.05)
    item = rec.finals[0].item_id
    assert _lifecycle(rec)[1] == ("utterance_stopped", item, "provider")
    _each_once_in_order(rec)


async def test_openai_without_server_vad_stops_at_the_final(
    openai_realtime_server: OpenAIRealtimeServer,
) -> None:
    """No speech events at all (turn detection off, the client commits): the final says the
    speech had stopped, just before ``utterance_final``."""
    async with openai_realtime_session(openai_realtime_server) as (session, rec):
        rec.watch_utterances(session)
        await openai_realtime_server.send(
            oai.committed("item_A"), oai.transcription_completed("item_A", "hello")
        )
        await rec.wait_for_finals(1)
        await asyncio.sleep(0.05)
    assert _lifecycle(rec) == [
        ("utterance_started", "item_A", None),
        ("utterance_stopped", "item_A", "final"),
        ("utterance_final", "item_A", "final"),
    ]
    _each_once_in_order(rec)


async def test_openai_server_vad_stop_is_the_providers(
    openai_realtime_server: OpenAIRealtimeServer,
) -> None:
    async with openai_realtime_session(openai_realtime_server) as (session, rec):
        rec.watch_utterances(session)
        await openai_realtime_server.send(
            oai.speech_started("item_A", 100),
            oai.speech_stopped("item_A", 900),
            oai.transcription_completed("item_A", "hello"),
        )
        await rec.wait_for_finals(1)
        await asyncio.sleep(0.05)
    assert [by for _, _, by in _lifecycle(rec)] == [None, "provider", "provider"]
    _each_once_in_order(rec)
