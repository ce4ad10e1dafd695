"""Frontend segments keyed by utterance (opt-in): RoomIO publishes a user utterance's
transcripts with ``lk.segment_id`` equal to its ``item_id``.

Upstream's user transcription output names each segment ``SG_...`` afresh after every final,
unrelated to the utterance, so a frontend (components-js groups by ``lk.segment_id``) cannot
match a bubble to the utterance, and a late transcript of utterance A that arrives after B
started lands in B's segment. With ``utterance_segments(session)`` RoomIO's own output code
still writes every text stream; only the segment id it stamps is the utterance's. With
``placeholder=True`` an empty non-final segment goes out at the utterance's speech start.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import AsyncIterator, Callable
from typing import Any

from . import _touchpoints as tp
from ._engine import Feature, Probe
from ._funnel import IDENTITY
from ._speech import SpeechSignal, speech_of
from ._state import Attached
from ._wrapping import ACTIVE, Patcher, hook_errors_logged, when_active

logger = logging.getLogger("livekit_ext")

FEATURE = "utterance_segments"
_OUTPUT = "livekit.agents.voice.room_io._output"
_OUTPUTS = "_ParticipantTranscriptionOutput__outputs"  # RoomIO's legacy + text-stream sinks
_STREAM_SINK = f"{_OUTPUT}:_ParticipantStreamTranscriptionOutput"
_LEGACY_SINK = f"{_OUTPUT}:_ParticipantLegacyTranscriptionOutput"

FORWARD_USER_TRANSCRIPT = tp.wrap(
    "RoomIO's user transcript loop reads each event after its segment id is set",
    f"{tp.ROOM_IO}._forward_user_transcript",
)
USER_TR_OUTPUT = tp.attr("RoomIO's user transcription output", f"{tp.ROOM_IO}._user_tr_output")
AGENT_SESSION = tp.attr("the AgentSession a RoomIO serves", f"{tp.ROOM_IO}._agent_session")
SINKS = tp.attr(
    "the output's legacy and text-stream sinks",
    f"{_OUTPUT}:_ParticipantTranscriptionOutput.__outputs",
)
STREAM_RESET = tp.wrap(
    "a new text-stream segment keeps the utterance's id", f"{_STREAM_SINK}._reset_state"
)
LEGACY_RESET = tp.wrap(
    "a new legacy segment keeps the utterance's id", f"{_LEGACY_SINK}._reset_state"
)
CURRENT_ID = tp.attr(
    "the segment id a sink stamps (lk.segment_id)",
    f"{_STREAM_SINK}._current_id",
    f"{_LEGACY_SINK}._current_id",
)
CREATE_TEXT_WRITER = tp.call(
    "the placeholder segment, written by the sink's own writer code",
    f"{_STREAM_SINK}._create_text_writer",
)
NATIVE_SEGMENTS = tp.read(
    "the patch series: RoomIO's output takes the segment id from its caller (native)",
    f"{_OUTPUT}:_ParticipantTranscriptionOutput.set_segment_id",
    optional=True,
)
SESSION_SWITCHES = tp.attr(
    "the patch series' switches on the session: per-utterance segments, a placeholder",
    f"{tp.SESSION}.user_segments_per_utterance",
    f"{tp.SESSION}.user_segment_placeholder",
    optional=True,
)
FLUSH_TASK = tp.attr(
    "a final still being published keeps the id it was flushed with",
    f"{_STREAM_SINK}._flush_atask",
    f"{_LEGACY_SINK}._flush_task",
)


class _Segments:
    """One session's segments: its opt-in, its RoomIOs, the speech subscription."""

    def __init__(self) -> None:
        self.opted = False
        self.placeholder = False
        self.room_ios: weakref.WeakSet[Any] = weakref.WeakSet()


class _Pin:
    """One sink's segment id to keep (the utterance it publishes), once set."""

    __slots__ = ("item_id",)

    def __init__(self) -> None:
        self.item_id: str | None = None


SEGMENTS: Attached[_Segments] = Attached("utterance_segments", _Segments)
PINS: Attached[_Pin] = Attached("segment_pin", _Pin)


def utterance_segments(session: Any, *, placeholder: bool = False) -> None:
    """Make RoomIO publish ``session``'s user transcripts with ``lk.segment_id`` = the
    utterance's ``item_id`` (interims and final of one utterance in one segment; a late
    transcript in its own utterance's segment). ``placeholder=True`` also publishes an empty,
    non-final segment at the utterance's speech start. Call before or after ``session.start``.

    Where upstream keys the segments itself (patches/: the session's
    ``user_segments_per_utterance`` and ``user_segment_placeholder``), this switches those on."""
    if upstream_keys_segments():
        session.user_segments_per_utterance = True
        session.user_segment_placeholder = placeholder
        return
    segments = SEGMENTS.of(session)
    if not segments.opted:
        segments.opted = True
        speech_of(session).subscribe(_placeholder_for(segments))
    segments.placeholder = placeholder


def upstream_keys_segments() -> bool:
    """Whether RoomIO's user transcription output takes a segment id from its caller (and
    RoomIO passes the utterance's ``item_id`` when the session asks for it)."""
    return NATIVE_SEGMENTS.resolvable(importing=True)


def _placeholder_for(opted: _Segments) -> Callable[[SpeechSignal], None]:
    def on_speech(signal: SpeechSignal) -> None:
        if not opted.placeholder or signal.kind != "started" or signal.item_id is None:
            return
        if FEATURE not in ACTIVE:
            return
        import asyncio  # livekit's own import; ``import livekit_ext`` alone stays cheap

        for room_io in list(opted.room_ios):
            output = getattr(room_io, "_user_tr_output", None)
            if output is not None:
                asyncio.get_running_loop().create_task(_send_placeholder(output, signal.item_id))

    return on_speech


def _sinks(output: Any) -> list[Any]:
    return list(vars(output).get(_OUTPUTS) or [])


async def _send_placeholder(output: Any, item_id: str) -> None:
    """An empty non-final segment named ``item_id``, written by the sink's own writer code."""
    with hook_errors_logged("publishing a placeholder segment"):
        for sink in _sinks(output):
            if not hasattr(sink, "_create_text_writer"):
                continue  # the legacy transcription API has no empty segment to show
            if getattr(sink, "_participant_identity", None) is None:
                continue
            await _settled(sink)
            writing = sink._current_id if getattr(sink, "_capturing", False) else None
            sink._current_id = item_id
            try:
                if sink._room.isconnected():
                    writer = await sink._create_text_writer()
                    await writer.write("")
                    await writer.aclose()
            finally:
                if writing is not None:  # another utterance's segment is open: it stays open
                    sink._current_id = writing
                else:
                    PINS.of(sink).item_id = item_id


async def _settled(sink: Any) -> None:
    """Let a final the sink is still publishing go out under the id it was flushed with."""
    import asyncio  # livekit's own import; ``import livekit_ext`` alone stays cheap

    own = vars(sink)  # the stream sink's task is _flush_atask (its _flush_task is a method)
    task = own.get("_flush_atask") or own.get("_flush_task")
    if isinstance(task, asyncio.Task) and not task.done():
        await asyncio.shield(task)


def _retarget(sink: Any, item_id: str) -> None:
    PINS.of(sink).item_id = item_id
    sink._current_id = item_id


async def _keyed(room_io: Any, event_ch: Any) -> AsyncIterator[Any]:
    """RoomIO's channel of user transcripts; for an opted-in session each is handed on once
    the sinks stamp its utterance's id."""
    async for ev in event_ch:
        with hook_errors_logged("naming a user transcription segment"):
            item_id = getattr(ev, "item_id", None)
            output = getattr(room_io, "_user_tr_output", None)
            opted = SEGMENTS.get(getattr(room_io, "_agent_session", None))
            if (
                opted is not None
                and opted.opted
                and item_id
                and output is not None
                and FEATURE in ACTIVE
            ):
                for sink in _sinks(output):
                    await _settled(sink)
                    _retarget(sink, item_id)
        yield ev


@when_active(FEATURE)
def _forward_user_transcript(
    wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any
) -> Any:
    """Every RoomIO's user transcript loop reads through :func:`_keyed` (which does nothing
    for a session that did not opt in), so opting in after ``session.start`` works too."""
    with hook_errors_logged("reading RoomIO's user transcripts"):
        SEGMENTS.of(instance._agent_session).room_ios.add(instance)
        event_ch = args[0] if args else kwargs.pop("event_ch")
        return wrapped(_keyed(instance, event_ch), *args[1:], **kwargs)
    return wrapped(*args, **kwargs)


@when_active(FEATURE)
def _reset_state(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
    """A new segment keeps the utterance's id (upstream makes a fresh ``SG_...``)."""
    result = wrapped(*args, **kwargs)
    if (pin := PINS.get(instance)) is not None and pin.item_id is not None:
        instance._current_id = pin.item_id
    return result


class UtteranceSegments(Feature):
    name = FEATURE
    description = "RoomIO user transcription segments keyed by the utterance's item_id (opt-in)"
    requires = (IDENTITY,)
    touchpoints = tp.declared(globals())

    def probe(self) -> Probe:
        if upstream_keys_segments():
            return Probe("native", "RoomIO keys user segments by item_id on the session's switch")
        return Probe("patchable", "utterance_segments(session) keys RoomIO's user segments")

    def install(self, patcher: Patcher) -> None:
        patcher.wrap(FORWARD_USER_TRANSCRIPT, _forward_user_transcript)
        patcher.wrap(STREAM_RESET, _reset_state)
        patcher.wrap(LEGACY_RESET, _reset_state)
