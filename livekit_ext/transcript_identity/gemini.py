"""Gemini Live: utterances named at the speech start, from the messages the plugin ignores.

The plugin names an utterance (its generation's ``input_id``) only when its first transcript
arrives. ``voiceActivity`` ACTIVITY_START (or a start-of-speech VAD signal) says earlier that
the user began, and with the audio offset: an id is reserved then, and the generation it opens
takes it. Without voiceActivity, a final transcription's ``start_offset`` names a new
utterance with its speech start.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from .. import _touchpoints as tp
from .._funnel import IDENTITY
from .._state import Attached
from .._timeline import parse_duration
from .._wrapping import ACTIVE, Patcher, hook_errors_logged, when_active
from .realtime_speech import REALTIME, RealtimeSpeech

RECV_TASK = tp.wrap(
    "each Gemini connection: observe voiceActivity", f"{tp.GEMINI}:RealtimeSession._recv_task"
)
NEW_GENERATION = tp.wrap(
    "a Gemini generation takes the id reserved at speech start",
    f"{tp.GEMINI}:RealtimeSession._start_new_generation",
)
CURRENT_GENERATION = tp.attr(
    "the generation whose input id names the utterance",
    f"{tp.GEMINI}:RealtimeSession._current_generation",
)
INPUT_ID = tp.attr(
    "the client-made id of a Gemini generation: the utterance's item id",
    f"{tp.GEMINI}:_ResponseGeneration.input_id",
)
GENERATION_DONE = tp.attr(
    "an interim belongs to the open generation's utterance, not to a finished one",
    f"{tp.GEMINI}:_ResponseGeneration._done",
)


class _After:
    """What else reads a Gemini session's messages, after this module has (by name)."""

    __slots__ = ("observers",)

    def __init__(self) -> None:
        self.observers: dict[str, Callable[[Any], None]] = {}


AFTER: Attached[_After] = Attached("gemini_after_identity", _After)


def after_each_message(session: Any, name: str, observer: Callable[[Any], None]) -> None:
    """Call ``observer`` with each server message of ``session``, after utterances are named
    from it (whatever order the wrappers were installed in); one observer per ``name``."""
    AFTER.of(session).observers[name] = observer


def install(patcher: Patcher) -> None:
    """The Gemini plugin was imported: observe voiceActivity, name utterances at its start."""
    patcher.wrap(RECV_TASK, _recv_task)
    patcher.wrap(NEW_GENERATION, _new_generation)


def observe_messages(connection: Any, observer: Callable[[Any], None]) -> None:
    """Call ``observer`` with each server message of ``connection`` before the plugin."""
    receive = connection.receive

    async def observed_receive(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        async for message in receive(*args, **kwargs):
            with hook_errors_logged("reading a Gemini server message"):
                observer(message)
            yield message

    connection.receive = observed_receive


@when_active(IDENTITY)
def _recv_task(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
    """Observe every LiveServerMessage of this connection for what the plugin ignores."""
    with hook_errors_logged("attaching to a Gemini live connection"):
        speech = REALTIME.of(instance)
        speech.provider = "gemini"  # voiceActivity: better than the plugin's speech events
        speech.connected()
        observe_messages(
            args[0] if args else kwargs.get("session"),
            lambda message: _on_message(instance, speech, message),
        )
    return wrapped(*args, **kwargs)


def _on_message(session: Any, speech: RealtimeSpeech, message: Any) -> None:
    if IDENTITY not in ACTIVE:
        return
    _on_voice_activity(speech, message)
    content = getattr(message, "server_content", None)
    final = getattr(content, "input_transcription", None) if content is not None else None
    if (
        final is not None
        and getattr(final, "text", None)
        and utterance_item(session, speech) is None
    ):
        offset = parse_duration(final.start_offset)
        if offset is not None:
            name_utterance(speech, offset)  # the generation it opens takes this name
        else:
            speech.heard_unnamed = True  # the generation it opens names it
    if (after := AFTER.get(session)) is not None:
        for observe in list(after.observers.values()):
            with hook_errors_logged("reading a Gemini server message"):
                observe(message)


def _on_voice_activity(speech: RealtimeSpeech, message: Any) -> None:
    activity = getattr(message, "voice_activity", None)
    kind = str(getattr(activity, "voice_activity_type", "") or "")
    signal = getattr(message, "voice_activity_detection_signal", None)
    signal_kind = str(getattr(signal, "vad_signal_type", "") or "")
    if activity is not None and kind.endswith("ACTIVITY_END"):
        _speech_stopped(speech, parse_duration(activity.audio_offset))
        return
    if activity is not None and kind.endswith("ACTIVITY_START"):
        offset = parse_duration(activity.audio_offset)
    elif signal is not None and signal_kind.endswith("SOS"):
        offset = None
    else:
        if speech.inferred_item is not None:
            _inferred_stop(speech, message)
        return
    # Gemini names the utterance only when its first transcript arrives; reserve that name now,
    # so whatever overlaps the speech from its start (a parallel STT) can already carry it
    reserved = _new_input_id()
    speech.reserved_item = reserved
    speech.speaking_item = reserved
    speech.provider_speech("started", reserved, arrival=time.time(), audio_offset=offset)


def _speech_stopped(speech: RealtimeSpeech, offset: float | None) -> None:
    """ACTIVITY_END: the utterance whose start was signalled stops (once)."""
    item_id, speech.speaking_item = speech.speaking_item, None
    if item_id is None:
        return
    if item_id == speech.inferred_item:
        speech.inferred_item = None
    stopped = time.time()
    if offset is not None and (mapped := speech.timeline.wall_time_at(offset)):
        stopped = min(mapped, stopped)
    speech.signal("stopped", item_id, stopped)


def _inferred_stop(speech: RealtimeSpeech, message: Any) -> None:
    """No ``voiceActivity`` said the speech ended: the model's first output (text, audio,
    output transcription or a tool call) says the service decided the user's turn is over;
    else ``turnComplete`` does (both before the plugin sees the message, which ends the
    turn and emits the final). The final itself is the last resort (``Utterances``)."""
    content = getattr(message, "server_content", None)
    output = getattr(content, "output_transcription", None)
    if (
        getattr(message, "tool_call", None) is not None
        or getattr(content, "model_turn", None) is not None
        or getattr(output, "text", None)
    ):
        evidence = "generation"
    elif getattr(content, "turn_complete", None):
        evidence = "turn_complete"
    else:
        return
    item_id, speech.inferred_item = speech.inferred_item, None
    if item_id is not None:
        speech.signal("stopped", item_id, time.time(), evidence)


def name_utterance(speech: RealtimeSpeech, offset: float | None) -> str:
    """Reserve the id of an utterance first heard of in a transcription (no voiceActivity),
    starting at ``offset`` into the audio where known, else now."""
    item_id = _new_input_id()
    # no signal: the transcript that named it starts the utterance for subscribers itself
    speech.provider_speech(
        "started", item_id, arrival=time.time(), audio_offset=offset, publish=False
    )
    speech.reserved_item = item_id
    if speech.speaking_item is None:  # no voiceActivity: its stop is inferred
        speech.inferred_item = item_id
    return item_id


def utterance_item(session: Any, speech: RealtimeSpeech) -> str | None:
    """The utterance the user is speaking: the id reserved at its speech start (not taken by
    a generation yet), else the open generation's input id, else None (not named yet)."""
    if speech.reserved_item is not None:
        return speech.reserved_item
    generation = getattr(session, "_current_generation", None)
    if generation is not None and not getattr(generation, "_done", True):
        item_id = getattr(generation, "input_id", None)
        return item_id if isinstance(item_id, str) else None
    return None


@when_active(IDENTITY)
def _new_generation(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
    result = wrapped(*args, **kwargs)
    with hook_errors_logged("binding a Gemini generation to its speech start"):
        generation = getattr(instance, "_current_generation", None)
        speech = REALTIME.of(instance)
        reserved = speech.take_reserved_item()
        if generation is not None and reserved is not None:
            generation.input_id = reserved  # nothing has used the plugin's own id yet
        elif (item_id := getattr(generation, "input_id", None)) is not None:
            speech.bind_pending(item_id)
        if speech.heard_unnamed:  # opened by the user's transcript: the utterance is spoken
            speech.heard_unnamed = False
            item_id = getattr(generation, "input_id", None)
            if speech.speaking_item is None and isinstance(item_id, str):
                speech.inferred_item = item_id  # no voiceActivity: its stop is inferred
    return result


def _new_input_id() -> str:
    from livekit.agents import utils

    return str(utils.shortuuid("GI_"))
