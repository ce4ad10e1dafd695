"""Frontend segments keyed by utterance, through RoomIO's real transcription output code.

No LiveKit server is available here: a room stand-in records what RoomIO's own output code
would send on topic ``lk.transcription`` (each text stream's attributes and text). The user
transcript loop is upstream's ``RoomIO._forward_user_transcript`` (as wrapped by the
extension) on a RoomIO made without ``__init__``, with upstream's real
``_ParticipantTranscriptionOutput`` for the user; the speech start that asks for a
placeholder is published on the session's speech signals (their sources are tested in
test_utterance_signals.py).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest
from livekit.agents import utils
from livekit.agents.voice import events as voice_events
from livekit.agents.voice.events import UserInputTranscribedEvent
from livekit.agents.voice.room_io._output import _ParticipantTranscriptionOutput
from livekit.agents.voice.room_io.room_io import RoomIO

import livekit_ext
from livekit_ext._speech import SpeechSignal, speech_of
from livekit_ext.utterance_segments import upstream_keys_segments

pytestmark = pytest.mark.unit

TOPIC = "lk.transcription"


@dataclass
class Stream:
    topic: str
    attributes: dict[str, str]
    text: str = ""
    closing_attributes: dict[str, str] | None = None


class _Writer:
    def __init__(self, stream: Stream) -> None:
        self.stream = stream

    async def write(self, text: str) -> None:
        self.stream.text += text

    async def aclose(self, *, attributes: dict[str, str] | None = None, **_: Any) -> None:
        self.stream.closing_attributes = attributes


@dataclass
class _LocalParticipant:
    streams: list[Stream] = field(default_factory=list)
    identity: str = "agent"
    track_publications: dict[str, Any] = field(default_factory=dict)

    async def stream_text(
        self, *, topic: str, attributes: dict[str, str] | None = None, **_: Any
    ) -> _Writer:
        stream = Stream(topic=topic, attributes=dict(attributes or {}))
        self.streams.append(stream)
        return _Writer(stream)


class RoomStandIn:
    """What RoomIO's transcription output touches of an ``rtc.Room``, recording streams."""

    def __init__(self) -> None:
        self.local_participant = _LocalParticipant()
        self.remote_participants: dict[str, Any] = {}  # no legacy-protocol client

    def on(self, *_: Any) -> None: ...

    def off(self, *_: Any) -> None: ...

    def isconnected(self) -> bool:
        return True


class _Session:
    """The AgentSession a RoomIO serves (only its identity matters here)."""


def _event(item: str, text: str, final: bool) -> Any:
    ev = UserInputTranscribedEvent(transcript=text, is_final=final)
    ev.item_id = item
    return ev


async def _publish(events: list[Any | SpeechSignal], *, opt_in: bool, placeholder: bool) -> Any:
    room = RoomStandIn()
    session = _Session()
    if opt_in:
        livekit_ext.utterance_segments(session, placeholder=placeholder)
    room_io = RoomIO.__new__(RoomIO)
    room_io._agent_session = session  # type: ignore[assignment]
    room_io._user_tr_output = _ParticipantTranscriptionOutput(
        room=room,  # type: ignore[arg-type]
        is_delta_stream=False,
        participant="user",
    )
    ch = utils.aio.Chan[UserInputTranscribedEvent]()
    task = asyncio.create_task(room_io._forward_user_transcript(ch))
    await asyncio.sleep(0)
    for ev in events:
        if isinstance(ev, SpeechSignal) and upstream_keys_segments():
            # upstream's RoomIO hears the session's user_speech_started on the same channel
            ch.send_nowait(
                voice_events.UserSpeechStartedEvent(  # type: ignore[attr-defined,unused-ignore]
                    item_id=ev.item_id, speech_started_at=ev.at, source="realtime"
                )
            )
        elif isinstance(ev, SpeechSignal):
            speech_of(session).publish(*ev)
        else:
            ch.send_nowait(ev)
        await asyncio.sleep(0.01)
    ch.close()
    await task
    if (aclose := getattr(room_io._user_tr_output, "aclose", None)) is not None:
        await aclose()  # 1.4.6's output has no aclose: its last flush ran in the sleep above
    return [
        (
            s.attributes["lk.segment_id"],
            s.text,
            s.attributes.get("lk.transcription_final"),
        )
        for s in room.local_participant.streams
        if s.topic == TOPIC
    ]


def _started(item: str) -> SpeechSignal:
    return SpeechSignal(kind="started", item_id=item, at=1.0, origin="openai")


async def test_each_utterance_is_one_segment_named_by_its_item_id() -> None:
    events = [
        _started("item_A"),
        _event("item_A", "my number", False),
        _started("item_B"),
        _event("item_B", "hello", False),
        _event("item_A", "my number is four", True),  # late: after B started
        _event("item_B", "hello there", True),
    ]
    sent = await _publish(events, opt_in=True, placeholder=True)
    assert sent == [
        ("item_A", "", "false"),  # the placeholder at speech start
        ("item_A", "my number", "false"),
        ("item_B", "", "false"),
        ("item_B", "hello", "false"),
        ("item_A", "my number is four", "false"),
        ("item_A", "my number is four", "true"),  # the late final goes to A's segment
        ("item_B", "hello there", "false"),
        ("item_B", "hello there", "true"),
    ]
    without_placeholder = await _publish(events, opt_in=True, placeholder=False)
    assert [s for s in sent if s[1]] == without_placeholder


async def test_without_opting_in_upstream_names_segments_per_flush() -> None:
    events = [
        _started("item_A"),
        _event("item_A", "my number", False),
        _started("item_B"),
        _event("item_B", "hello", False),
        _event("item_A", "my number is four", True),
    ]
    sent = await _publish(events, opt_in=False, placeholder=True)
    ids = [segment for segment, _, _ in sent]
    assert all(i.startswith("SG_") for i in ids)
    assert len(set(ids)) == 1  # A's and B's text in one segment: what this feature fixes
    assert [(t, f) for _, t, f in sent] == [
        ("my number", "false"),
        ("hello", "false"),
        ("my number is four", "false"),
        ("my number is four", "true"),
    ]
