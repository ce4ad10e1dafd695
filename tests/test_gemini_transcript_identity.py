"""Transcript identity for Gemini Live, end to end: a real ``AgentSession`` with the real
google plugin, talking to a loopback Gemini server over TLS.

Gemini gives no item id and no speech-start time of its own: the plugin mints a ``GI_...``
input id per generation, and the extension binds the (otherwise ignored) ``voiceActivity``
ACTIVITY_START to it. These tests pin that down on every supported release.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from google.genai.live import AsyncSession
from livekit.agents import Agent, AgentSession, UserInputTranscribedEvent

import livekit_ext
from livekit_ext.testing import GeminiLiveServer
from livekit_ext.testing.gemini_server import (
    input_transcription,
    turn_complete,
    voice_activity_start,
)

pytestmark = pytest.mark.wire
EXTENSION_DISABLED = os.environ.get("LIVEKIT_EXT_DISABLE") == "1"

WAIT_TIMEOUT = 5.0
GAP = 0.3  # seconds between the speech start and the first transcript in test (b)


@dataclass
class Arrival:
    """When the plugin's receive loop got one server message, and when it asked for the next."""

    message: Any
    received_at: float
    consumed_at: float | None = None


async def wait_until(ready: Callable[[], bool], what: str, timeout: float = WAIT_TIMEOUT) -> None:
    """Poll briefly instead of sleeping a fixed time: fast when it works, bounded when not."""
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.005)


@dataclass
class Harness:
    server: GeminiLiveServer
    session: AgentSession[Any]
    events: list[UserInputTranscribedEvent]
    arrivals: list[Arrival]

    async def utter(
        self, *chunks: str, before: Sequence[dict[str, Any]] = ()
    ) -> list[UserInputTranscribedEvent]:
        """One user turn: transcription chunks then turnComplete; its events, final last."""
        start = len(self.events)
        await self.server.send(*before, *(input_transcription(c) for c in chunks), turn_complete())
        await wait_until(
            lambda: any(e.is_final for e in self.events[start:]), "the final transcript"
        )
        return self.events[start:]


@pytest.fixture
def extension_applied() -> Iterator[None]:
    """Every test starts and (whatever it did) ends with the extension applied, unless the
    suite runs against the patch series with the extension disabled."""
    if EXTENSION_DISABLED:
        yield
        return
    livekit_ext.apply()
    try:
        yield
    finally:
        livekit_ext.apply()


@pytest.fixture
def arrivals(monkeypatch: pytest.MonkeyPatch) -> list[Arrival]:
    """Timestamp every message google-genai hands the plugin, so "arrival" is measurable.

    The extension wraps ``session.receive`` of each connection, so it sits between this
    recorder and the plugin: anything it stamps on a message lies in
    [received_at, consumed_at] of that message.
    """
    recorded: list[Arrival] = []
    original = AsyncSession.receive

    async def recording_receive(self: AsyncSession) -> AsyncGenerator[Any, None]:
        async for message in original(self):
            arrival = Arrival(message, time.time())
            recorded.append(arrival)
            yield message
            arrival.consumed_at = time.time()

    monkeypatch.setattr(AsyncSession, "receive", recording_receive)
    return recorded


@pytest.fixture
async def server() -> AsyncIterator[GeminiLiveServer]:
    async with GeminiLiveServer() as server:
        yield server


async def start_harness(server: GeminiLiveServer, arrivals: list[Arrival]) -> Harness:
    session: AgentSession[Any] = AgentSession(llm=server.realtime_model())
    events: list[UserInputTranscribedEvent] = []
    session.on("user_input_transcribed", events.append)
    harness = Harness(server, session, events, arrivals)
    try:
        await session.start(Agent(instructions="You are a loopback test agent."))
        await server.wait_for_setup()
    except BaseException:
        await session.aclose()
        raise
    return harness


@pytest.fixture
async def harness(
    extension_applied: None, server: GeminiLiveServer, arrivals: list[Arrival]
) -> AsyncIterator[Harness]:
    harness = await start_harness(server, arrivals)
    try:
        yield harness
    finally:
        await harness.session.aclose()


def assert_one_utterance(events: list[UserInputTranscribedEvent], chunks: int) -> None:
    """Interims then one final, all sharing one GI_ id, source and speech start."""
    assert [e.is_final for e in events] == [False] * chunks + [True]
    item_ids = {e.item_id for e in events}
    assert len(item_ids) == 1, item_ids
    (item_id,) = item_ids
    assert isinstance(item_id, str) and item_id.startswith("GI_"), item_id
    assert {e.source for e in events} == {"realtime"}  # type: ignore[attr-defined]
    starts = {e.speech_started_at for e in events}  # type: ignore[attr-defined]
    assert len(starts) == 1, starts
    (started,) = starts
    assert isinstance(started, float)
    assert all(started <= e.created_at for e in events)


async def test_interims_and_final_share_one_identity(harness: Harness) -> None:
    events = await harness.utter("Hello", " there", " friend")

    assert_one_utterance(events, chunks=3)
    assert [e.transcript for e in events] == [
        "Hello",
        "Hello there",
        "Hello there friend",
        "Hello there friend",
    ]
    # the id is the plugin's own input id: the committed user message carries it too
    assert events[-1].item_id in {item.id for item in harness.session.history.items}


@pytest.mark.parametrize("audio_offset", [None, "1.5s"])
async def test_voice_activity_start_is_the_speech_start(
    harness: Harness, audio_offset: str | None
) -> None:
    # with no audio pushed an offset cannot be mapped to the wall clock: arrival time it is
    before_send = time.time()
    await harness.server.send(voice_activity_start(audio_offset))
    await wait_until(
        lambda: any(a.message.voice_activity and a.consumed_at for a in harness.arrivals),
        "the client to consume the voiceActivity message",
    )
    (arrival,) = [a for a in harness.arrivals if a.message.voice_activity]
    assert arrival.consumed_at is not None
    await asyncio.sleep(GAP)

    events = await harness.utter("What", " time is it")

    assert_one_utterance(events, chunks=2)
    started = events[0].speech_started_at  # type: ignore[attr-defined]
    assert before_send <= arrival.received_at <= started <= arrival.consumed_at
    assert events[0].created_at - started >= GAP


async def test_without_voice_activity_the_first_transcript_is_the_start(
    harness: Harness,
) -> None:
    events = await harness.utter("Just", " text")

    assert_one_utterance(events, chunks=2)
    _assert_started_with_its_first_transcript(events[0])
    assert events[-1].created_at > events[0].created_at


def _assert_started_with_its_first_transcript(first: Any) -> None:
    """The start of an utterance no voice activity announced: its first transcript, or, on
    releases whose transcripts carry ``turn_started_at`` (1.6.10+), upstream's own start of
    the turn (its generation, opened by that transcript), which the extension reads too."""
    from livekit.agents import llm

    started = first.speech_started_at
    if "turn_started_at" in llm.InputTranscriptionCompleted.__dataclass_fields__:
        assert 0 <= first.created_at - started < 0.05
    else:
        assert started == first.created_at


async def test_back_to_back_utterances_get_their_own_ids(harness: Harness) -> None:
    before_second = time.time()
    # both turns in one burst: nothing but turnComplete separates them
    await harness.server.send(
        input_transcription("first"),
        turn_complete(),
        voice_activity_start(),
        input_transcription("second"),
        turn_complete(),
    )
    await wait_until(lambda: sum(e.is_final for e in harness.events) == 2, "two final transcripts")
    first, second = harness.events[:2], harness.events[2:]
    assert_one_utterance(first, chunks=1)
    assert_one_utterance(second, chunks=1)
    assert first[0].transcript == "first" and second[0].transcript == "second"
    assert first[0].item_id != second[0].item_id
    # the second voiceActivity belongs to the second turn, not the first
    _assert_started_with_its_first_transcript(first[0])
    (activity,) = [a for a in harness.arrivals if a.message.voice_activity]
    assert activity.consumed_at is not None
    second_start = second[0].speech_started_at  # type: ignore[attr-defined]
    assert before_second <= first[-1].created_at <= activity.received_at
    assert activity.received_at <= second_start <= activity.consumed_at


@pytest.mark.skipif(EXTENSION_DISABLED, reason="exercises the extension itself")
async def test_revert_removes_the_fields_and_apply_restores_them(harness: Harness) -> None:
    # the session was started with the extension applied; its handlers are our wrappers,
    # which must fall through to upstream while reverted and enrich again once re-applied
    enriched = await harness.utter("one")
    assert_one_utterance(enriched, chunks=1)

    livekit_ext.revert()
    assert "speech_started_at" not in UserInputTranscribedEvent.model_fields
    reverted = await harness.utter("plain", " upstream")
    assert [e.is_final for e in reverted] == [False, False, True]
    for event in reverted:
        assert getattr(event, "speech_started_at", None) is None
        assert getattr(event, "source", None) is None
    # item_id is upstream's own from livekit-agents 1.6 on; before that it was ours alone
    reverted_ids = {getattr(e, "item_id", None) for e in reverted}
    if "item_id" in UserInputTranscribedEvent.model_fields:
        assert len(reverted_ids) == 1 and reverted_ids != {enriched[0].item_id}
    else:
        assert reverted_ids == {None}

    livekit_ext.apply()
    assert "speech_started_at" in UserInputTranscribedEvent.model_fields
    before_send = time.time()
    applied = await harness.utter("enriched", " again", before=[voice_activity_start()])
    assert_one_utterance(applied, chunks=2)
    # the voiceActivity observer of this connection is live again too
    assert before_send <= applied[0].speech_started_at < applied[0].created_at  # type: ignore[attr-defined]
    assert applied[0].item_id not in {enriched[0].item_id, *reverted_ids}


@pytest.mark.skipif(EXTENSION_DISABLED, reason="exercises the extension itself")
async def test_a_session_started_while_reverted_is_left_alone(
    extension_applied: None, server: GeminiLiveServer, arrivals: list[Arrival]
) -> None:
    livekit_ext.revert()
    harness = await start_harness(server, arrivals)
    try:
        events = await harness.utter("untouched", " by us")
        assert [e.is_final for e in events] == [False, False, True]
        for event in events:
            assert getattr(event, "speech_started_at", None) is None
            assert getattr(event, "source", None) is None
    finally:
        await harness.session.aclose()


async def test_a_reconnected_session_is_observed_again(harness: Harness) -> None:
    before = await harness.utter("before", " the drop")
    assert_one_utterance(before, chunks=2)

    await harness.server.drop()
    await harness.server.wait_for_setup(2)
    after = await harness.utter("after", " it", before=[voice_activity_start()])

    assert_one_utterance(after, chunks=2)
    assert after[0].item_id != before[0].item_id
    # the voiceActivity of the new connection was seen: its arrival is the speech start
    (activity,) = [a for a in harness.arrivals if a.message.voice_activity]
    assert activity.consumed_at is not None
    started = after[0].speech_started_at  # type: ignore[attr-defined]
    assert activity.received_at <= started <= activity.consumed_at
