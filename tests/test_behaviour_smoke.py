"""A short wire smoke of what each feature does, run by ``scripts/behaviour_sweep.py`` on every
release of the range (``python -m pytest -m sweep tests/test_behaviour_smoke.py``).

The touchpoint sweep proves the names exist on each release; this proves the behaviour behind
them, one utterance or one ``session.update`` per check, over the loopback servers. The main
suite checks the same behaviour in depth on the matrix releases, so this module is deselected
there (marker ``sweep``). Each test's name is a column of the sweep's table.

A check whose feature ``status()`` does not report ``patched`` or ``native`` on the installed
release is skipped with the reason (``n/a`` in the table): what must never happen is a feature
that says it is in effect and is not.
"""

from __future__ import annotations

from typing import Any

import pytest
from jobproc_common import identity_of_one_utterance
from test_azure_wire import (
    COMBOS,
    Combo,
    assert_connected_where_expected,
    assert_shape,
    azure_session,
    settings_of,
    update,
)
from test_gemini_transcript_identity import assert_one_utterance

import livekit_ext
from livekit_ext.testing import GeminiLiveServer, OpenAIRealtimeServer
from livekit_ext.testing import gemini_server as gem
from livekit_ext.testing import openai_server as oai
from livekit_ext.testing.sessions import gemini_realtime_session, openai_realtime_session

pytestmark = [pytest.mark.sweep, pytest.mark.wire]

BAD_FRAME = "{not json"


def in_effect(feature: str) -> None:
    """Skip (``n/a``) unless ``status()`` says the feature is in effect on this release."""
    state = livekit_ext.status()[feature]
    if state.state not in ("patched", "native"):
        pytest.skip(f"{feature} {state.state}: {state.reason}")


def nulls_sent(event: dict[str, Any]) -> set[str]:
    """Which of the two settings a ``session.update`` sets to an explicit ``null``."""
    container, transcription_key = settings_of(event["session"])
    keys = {"transcription": transcription_key, "turn_detection": "turn_detection"}
    return {name for name, key in keys.items() if key in container and container[key] is None}


async def test_identity_openai() -> None:
    in_effect("transcript_identity")
    item_id, started_at, source = await identity_of_one_utterance()
    assert (item_id, source) == ("item_job", "realtime")
    assert isinstance(started_at, float)


async def test_identity_gemini(gemini_live_server: GeminiLiveServer) -> None:
    in_effect("transcript_identity")
    server = gemini_live_server
    async with gemini_realtime_session(server) as (_, rec):
        await server.send(
            gem.voice_activity_start(), gem.input_transcription("hello"), gem.turn_complete()
        )
        await rec.wait_for_finals(1)
    assert_one_utterance(rec.transcripts, chunks=1)


@pytest.mark.parametrize("combo", COMBOS)
async def test_azure_nulls(combo: Combo) -> None:
    """``None`` at connect is an explicit null; switched off mid-session, one is sent; each in
    the shape the endpoint speaks."""
    in_effect("azure_explicit_nulls")
    async with (
        OpenAIRealtimeServer() as server,
        azure_session(server, combo, input_audio_transcription=None, turn_detection=None),
    ):
        first = server.client_events_of("session.update")[0]
        assert nulls_sent(first) == {"transcription", "turn_detection"}, first
        assert_connected_where_expected(server, combo)
        assert_shape(combo, [first])
    async with OpenAIRealtimeServer() as server, azure_session(server, combo) as (model, _):
        no_transcription = await update(server, model, input_audio_transcription=None)
        assert nulls_sent(no_transcription) == {"transcription"}, no_transcription
        no_vad = await update(server, model, turn_detection=None)
        assert nulls_sent(no_vad) == {"turn_detection"}, no_vad
        assert_shape(combo, server.client_events_of("session.update"))


async def test_bad_frame_openai(openai_realtime_server: OpenAIRealtimeServer) -> None:
    in_effect("malformed_frames")
    server = openai_realtime_server
    async with openai_realtime_session(server) as (_, rec):
        await server.send_raw(BAD_FRAME)
        await server.send(oai.speech_started("item_B"), oai.transcription_completed("item_B", "hi"))
        (final,) = await rec.wait_for_finals(1, timeout=3.0)
    assert final.transcript == "hi"
    assert not [e for e in rec.errors if not getattr(e.error, "recoverable", True)]
    assert len(server.connections) == 1


async def test_bad_frame_gemini(gemini_live_server: GeminiLiveServer) -> None:
    in_effect("gemini_malformed_frames")
    server = gemini_live_server
    async with gemini_realtime_session(server) as (_, rec):
        await server.send_raw(BAD_FRAME)
        await server.send(gem.input_transcription("hi"), gem.turn_complete())
        (final,) = await rec.wait_for_finals(1, timeout=3.0)
    assert final.transcript.strip() == "hi"
    assert not rec.errors
    assert server.setups_completed == 1
