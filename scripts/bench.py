#!/usr/bin/env python3
"""Cost of transcript identity: raw OpenAI server event -> ``user_input_transcribed``.

Drives the real OpenAI realtime session of a real AgentSession (connected to the loopback
server) with the raw events of many utterances, through the same session handlers the
receive loop calls, once on stock upstream (``revert()``) and once patched, alternating
rounds in one run. Also measures what ``import livekit_ext`` adds on top of importing
livekit-agents and both plugins. Last line: ``overhead ratio: X.XX`` (target <= 1.10), the
median over rounds of patched / stock CPU time, the two measured back to back.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

import livekit_ext
from livekit_ext.testing import OpenAIRealtimeServer
from livekit_ext.testing import openai_server as oai
from livekit_ext.testing.sessions import openai_realtime_session

UTTERANCES = 400
DELTAS = 5
ROUNDS = 14

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


def utterance_events(n: int, tag: str) -> list[dict[str, Any]]:
    item = f"item_{tag}_{n}"
    events = [oai.speech_started(item, 100), oai.speech_stopped(item, 900)]
    events += [oai.transcription_delta(item, f" word{i}") for i in range(DELTAS)]
    events.append(oai.transcription_completed(item, "word0 word1 word2 word3 word4"))
    return [{"event_id": f"ev_{i}", **e} for i, e in enumerate(events)]


def dispatcher(rt_session: Any) -> tuple[Any, int]:
    """The receive loop's work for one JSON frame: parse, announce raw, call the handler
    (an event the release has no handler for, as 1.4's deltas, is only announced); and how
    many transcripts an utterance then yields."""
    from openai.types.realtime import RealtimeServerEvent
    from pydantic import TypeAdapter

    adapter: TypeAdapter[Any] = TypeAdapter(RealtimeServerEvent)
    models = {kind: type(adapter.validate_python(e)) for kind, e in _sample_events().items()}
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
        DELTAS if "conversation.item.input_audio_transcription.delta" in handlers else 0
    )
    return dispatch, per_utterance


def _sample_events() -> dict[str, dict[str, Any]]:
    return {e["type"]: e for e in utterance_events(0, "sample")}


def run_round(dispatcher: tuple[Any, int], rec: Any, tag: str, patched: bool) -> float:
    """CPU seconds to dispatch UTTERANCES utterances' raw events (GC paused while timed)."""
    dispatch, per_utterance = dispatcher
    frames = [json.dumps(e) for n in range(UTTERANCES) for e in utterance_events(n, tag)]
    rec.transcripts.clear()
    gc.collect()
    gc.disable()
    try:
        started = time.process_time()
        for frame in frames:
            dispatch(frame)
        elapsed = time.process_time() - started
    finally:
        gc.enable()
    expected = UTTERANCES * per_utterance
    assert len(rec.transcripts) == expected, (len(rec.transcripts), expected)
    assert (getattr(rec.transcripts[-1], "speech_started_at", None) is not None) == patched
    return elapsed


def forget_history(session: Any) -> None:
    """Empty the chat contexts the rounds filled: upstream looks items up by id linearly, so
    a context growing round after round would make later rounds ever slower and noisier."""
    session._activity._agent._chat_ctx.items.clear()
    session.history.items.clear()


async def measure(rounds: int) -> tuple[list[float], list[float]]:
    """Interleaved rounds on two sessions: one started on stock upstream, one patched.

    Each round runs the other mode right after (order alternating), so machine drift hits
    both modes alike; both chat contexts are emptied between rounds.
    """
    stock: list[float] = []
    patched: list[float] = []
    async with OpenAIRealtimeServer() as server_a, OpenAIRealtimeServer() as server_b:
        livekit_ext.revert()
        async with openai_realtime_session(server_a) as (session_a, rec_a):
            livekit_ext.apply()
            async with openai_realtime_session(server_b) as (session_b, rec_b):
                stock_dispatch = dispatcher(session_a._activity._rt_session)
                patched_dispatch = dispatcher(session_b._activity._rt_session)
                for r in range(rounds):
                    for mode in ("stock", "patched") if r % 2 else ("patched", "stock"):
                        if mode == "stock":
                            livekit_ext.revert()
                            stock.append(run_round(stock_dispatch, rec_a, f"s{r}", False))
                        else:
                            livekit_ext.apply()
                            patched.append(run_round(patched_dispatch, rec_b, f"p{r}", True))
                        await asyncio.sleep(0)  # let the sessions' tasks drain
                    forget_history(session_a)
                    forget_history(session_b)
    livekit_ext.apply()
    return stock, patched


def import_overhead_ms(samples: int = 5) -> float:
    code = (
        "import time\n"
        "import livekit.agents, livekit.plugins.openai, livekit.plugins.google\n"
        "t = time.perf_counter()\nimport livekit_ext\n"
        "print((time.perf_counter() - t) * 1000)\n"
    )
    # bytecode caching on, one warm-up: what a deployed agent pays, not a first compile
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("LIVEKIT_EXT_DISABLE", "PYTHONDONTWRITEBYTECODE")
    }
    subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, check=True)
    values = [
        float(
            subprocess.run(
                [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        for _ in range(samples)
    ]
    return statistics.median(values)


async def main() -> None:
    stock, patched = await measure(ROUNDS)
    events = UTTERANCES * (DELTAS + 3)
    s, p = statistics.median(stock), statistics.median(patched)
    # each round's two modes ran back to back: their ratio cancels the machine's drift
    paired = statistics.median(pt / st for st, pt in zip(stock, patched, strict=True))
    print(f"raw events per round: {events} ({UTTERANCES} utterances), rounds: {len(stock)} each")
    print(f"stock:   {s * 1e6 / events:.1f} us/event (median CPU)")
    print(f"patched: {p * 1e6 / events:.1f} us/event (median CPU)")
    print(f"ratio of the medians: {p / s:.2f}")
    print(f"import livekit_ext on top of livekit-agents + plugins: {import_overhead_ms():.1f} ms")
    print(f"overhead ratio: {paired:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
