"""Raw OpenAI server events through a real session's handlers, without sockets.

Shared by the scripts that drive a real AgentSession's OpenAI realtime session as fast as its
receive loop could: the events of one utterance, a dispatcher doing the receive loop's work
for one text frame, and emptying the chat contexts such a drive fills.
"""

from __future__ import annotations

import gc
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from livekit_ext.testing import openai_server as oai

_HANDLERS = {
    "input_audio_buffer.speech_started": "_handle_input_audio_buffer_speech_started",
    "input_audio_buffer.speech_stopped": "_handle_input_audio_buffer_speech_stopped",
    "conversation.item.input_audio_transcription.delta": (
        "_handle_conversion_item_input_audio_transcription_delta"
    ),
    "conversation.item.input_audio_transcription.completed": (
        "_handle_conversion_item_input_audio_transcription_completed"
    ),
}


def utterance_events(n: int, tag: str, deltas: int) -> list[dict[str, Any]]:
    item = f"item_{tag}_{n}"
    events = [oai.speech_started(item, 100), oai.speech_stopped(item, 900)]
    events += [oai.transcription_delta(item, f" word{i}") for i in range(deltas)]
    events.append(oai.transcription_completed(item, " ".join(f"word{i}" for i in range(deltas))))
    return [{"event_id": f"ev_{i}", **e} for i, e in enumerate(events)]


def dispatcher(rt_session: Any, deltas: int) -> tuple[Any, int]:
    """The receive loop's work for one JSON frame: parse, announce raw, call the handler
    (an event the release has no handler for, as 1.4's deltas, is only announced); and how
    many transcripts an utterance then yields."""
    from openai.types.realtime import RealtimeServerEvent
    from pydantic import TypeAdapter

    adapter: TypeAdapter[Any] = TypeAdapter(RealtimeServerEvent)
    models = {kind: type(adapter.validate_python(e)) for kind, e in _sample_events(deltas).items()}
    handlers = {
        kind: handler
        for kind, name in _HANDLERS.items()
        if (handler := getattr(rt_session, name, None)) is not None
    }

    def dispatch(frame: str) -> None:
        event = json.loads(frame)
        rt_session.emit("openai_server_event_received", event)
        kind = event["type"]
        if (handler := handlers.get(kind)) is not None:
            handler(models[kind].model_construct(**event))

    # the speech-stop interim and the final, plus an interim per delta where deltas are handled
    per_utterance = 2 + (
        deltas if "conversation.item.input_audio_transcription.delta" in handlers else 0
    )
    return dispatch, per_utterance


def _sample_events(deltas: int) -> dict[str, dict[str, Any]]:
    return {e["type"]: e for e in utterance_events(0, "sample", deltas)}


def forget_history(session: Any) -> None:
    """Empty what upstream keeps of every utterance: the chat contexts (it looks items up by
    id linearly, so a growing context makes later rounds ever slower and noisier) and the
    session's list of every event it emitted (``_recorded_events``, kept for its recorder)."""
    session._activity._agent._chat_ctx.items.clear()
    session.history.items.clear()
    recorded = getattr(session, "_recorded_events", None)
    if isinstance(recorded, list):
        recorded.clear()


def rounds(default: int) -> int:
    """``--rounds N`` on the command line, else ``default`` (CI samples fewer rounds than the
    default, which is what the figures in the docs quote)."""
    if "--rounds" in sys.argv:
        return int(sys.argv[sys.argv.index("--rounds") + 1])
    return default


def timed_chunks(
    frames: list[str],
    per_chunk: int,
    dispatch: Callable[[str], Any],
    between_chunks: Callable[[], None],
) -> float:
    """CPU seconds of dispatching ``frames``, ``per_chunk`` at a time; ``between_chunks`` (and
    a collection) run untimed before each chunk, the collector is off while one is timed."""
    elapsed = 0.0
    for at in range(0, len(frames), per_chunk):
        between_chunks()
        gc.collect()
        gc.disable()
        try:
            started = time.process_time()
            for frame in frames[at : at + per_chunk]:
                dispatch(frame)
            elapsed += time.process_time() - started
        finally:
            gc.enable()
    return elapsed
