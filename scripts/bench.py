#!/usr/bin/env python3
"""Cost of transcript identity: raw OpenAI server event -> ``user_input_transcribed``.

Drives the real OpenAI realtime session of a real AgentSession (connected to the loopback
server) with the raw events of many utterances, through the same session handlers the
receive loop calls, once on stock upstream (``revert()``) and once patched, alternating
rounds in one run. Also measures what ``import livekit_ext`` adds on top of importing
livekit-agents and both plugins. Last line: ``overhead ratio: X.XX`` (target <= 1.10).
"""

from __future__ import annotations

import asyncio
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
ROUNDS = 7

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


def dispatcher(rt_session: Any) -> Any:
    """The receive loop's work for one JSON frame: parse, announce raw, call the handler."""
    from openai.types.realtime import RealtimeServerEvent
    from pydantic import TypeAdapter

    adapter: TypeAdapter[Any] = TypeAdapter(RealtimeServerEvent)
    models = {kind: type(adapter.validate_python(e)) for kind, e in _sample_events().items()}
    handlers = {kind: getattr(rt_session, name) for kind, name in _HANDLERS.items()}

    def dispatch(frame: str) -> None:
        event = json.loads(frame)
        rt_session.emit("openai_server_event_received", event)
        kind = event["type"]
        handlers[kind](models[kind].model_construct(**event))

    return dispatch


def _sample_events() -> dict[str, dict[str, Any]]:
    return {e["type"]: e for e in utterance_events(0, "sample")}


async def measure(patched: bool, rounds: int) -> list[float]:
    """CPU seconds per round of UTTERANCES utterances, on a session started in this mode."""
    livekit_ext.apply() if patched else livekit_ext.revert()
    timings: list[float] = []
    async with OpenAIRealtimeServer() as server, openai_realtime_session(server) as (session, rec):
        dispatch = dispatcher(session._activity._rt_session)
        for r in range(rounds):
            frames = [json.dumps(e) for n in range(UTTERANCES) for e in utterance_events(n, f"{r}")]
            rec.transcripts.clear()
            started = time.process_time()
            for frame in frames:
                dispatch(frame)
            timings.append(time.process_time() - started)
            expected = UTTERANCES * (DELTAS + 2)
            assert len(rec.transcripts) == expected, (len(rec.transcripts), expected)
            if patched:
                assert rec.transcripts[-1].speech_started_at is not None
            await asyncio.sleep(0)  # let the session's tasks drain between rounds
    return timings


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
    stock: list[float] = []
    patched: list[float] = []
    for _ in range(2):  # alternate modes so drift hits both alike
        stock += await measure(False, ROUNDS)
        patched += await measure(True, ROUNDS)
    livekit_ext.apply()
    events = UTTERANCES * (DELTAS + 3)
    s, p = statistics.median(stock), statistics.median(patched)
    print(f"raw events per round: {events} ({UTTERANCES} utterances), rounds: {len(stock)} each")
    print(f"stock:   {s * 1e6 / events:.1f} us/event (median CPU)")
    print(f"patched: {p * 1e6 / events:.1f} us/event (median CPU)")
    print(f"import livekit_ext on top of livekit-agents + plugins: {import_overhead_ms():.1f} ms")
    print(f"overhead ratio: {p / s:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
