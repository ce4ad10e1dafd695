#!/usr/bin/env python3
"""Cost of transcript identity: raw OpenAI server event -> ``user_input_transcribed``.

Drives the real OpenAI realtime session of a real AgentSession (connected to the loopback
server) with the raw events of many utterances, through the same session handlers the
receive loop calls, once on stock upstream (``revert()``) and once patched, alternating
rounds in one run. Also measures the receive loop's own cost per server frame (audio deltas,
the bulk of the traffic): the websocket read (guarded when patched), the engine module's
``json.loads`` (the stand-in that takes the guard's parse when patched), the raw-event emit
and the event construction -- everything upstream does for a frame before its handler, whose
work is the same either way (left out, so the ratio is the stricter one; target <= 1.05). And
what ``import livekit_ext`` adds on top of importing livekit-agents and both plugins. Last
line: ``overhead ratio: X.XX`` (target <= 1.10), the median over rounds of patched / stock
CPU time for the per-event path, the two measured back to back.
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

from _drive import dispatcher, forget_history, rounds, timed_chunks, utterance_events

import livekit_ext
from livekit_ext.testing import OpenAIRealtimeServer
from livekit_ext.testing.sessions import openai_realtime_session

UTTERANCES = 150
WARM_UTTERANCES = 30
CHUNK = 50
DELTAS = 5
ROUNDS = 40
FRAME_BLOCK = 200
FRAME_PAIRS = 150
AUDIO_DELTA_B64 = "A" * 6400  # 4.8 kB of PCM: 100 ms at 24 kHz, as the service sends it


def run_round(
    dispatcher: tuple[Any, int],
    session: Any,
    rec: Any,
    tag: str,
    patched: bool,
    utterances: int = UTTERANCES,
) -> float:
    """CPU seconds to dispatch ``utterances`` utterances' raw events (GC paused while timed).

    Timed in chunks of CHUNK utterances with upstream's history emptied between them,
    untimed: upstream looks chat items up linearly, so a growing context would add a cost
    that grows with the round's length and dilutes the ratio.
    """
    dispatch, per_utterance = dispatcher
    frames = [json.dumps(e) for n in range(utterances) for e in utterance_events(n, tag, DELTAS)]
    per_chunk = CHUNK * (DELTAS + 3)
    rec.transcripts.clear()
    elapsed = timed_chunks(frames, per_chunk, dispatch, lambda: forget_history(session))
    expected = utterances * per_utterance
    assert len(rec.transcripts) == expected, (len(rec.transcripts), expected)
    assert (getattr(rec.transcripts[-1], "speech_started_at", None) is not None) == patched
    return elapsed


class _ReplayedWebSocket:
    """Hands out prebuilt frames as ``aiohttp``'s ``ws.receive()`` does, without a socket."""

    def __init__(self, messages: list[Any]) -> None:
        self._next = iter(messages).__next__

    async def receive(self) -> Any:
        return self._next()


def audio_delta_messages() -> list[Any]:
    import aiohttp

    return [
        aiohttp.WSMessage(
            aiohttp.WSMsgType.TEXT,
            json.dumps(
                {
                    "type": "response.output_audio.delta",
                    "event_id": f"ev_{i}",
                    "response_id": "resp_bench",
                    "item_id": "item_bench",
                    "output_index": 0,
                    "content_index": 0,
                    "delta": AUDIO_DELTA_B64,
                }
            ),
            None,
        )
        for i in range(FRAME_BLOCK)
    ]


async def frame_block(rt_session: Any, messages: list[Any], patched: bool) -> float:
    """CPU seconds the receive loop spends on ``messages`` before the handler.

    Stock reads the socket and parses with the real ``json.loads``, as the unpatched engine
    module does; patched reads through the guard and parses with the module's ``json``
    stand-in (which takes the guard's parse), as the patched module does. No revert() is
    needed in between, so the two alternate in short blocks and the machine's drift cancels.
    """
    from openai.types.realtime import ResponseAudioDeltaEvent

    from livekit_ext import malformed_frames

    ws: Any = _ReplayedWebSocket(messages)
    loads = json.loads
    if patched:
        module_json = sys.modules[type(rt_session).__module__].json
        assert hasattr(module_json, "handoff"), "the feature is not applied"
        malformed_frames._guard_frames(ws, module_json.handoff)  # what _create_ws_conn does
        loads = module_json.loads
    emit = rt_session.emit
    started = time.process_time()
    for _ in range(len(messages)):
        msg = await ws.receive()
        event = loads(msg.data)
        emit("openai_server_event_received", event)
        if event["type"] == "response.output_audio.delta":
            ResponseAudioDeltaEvent.construct(**event)
    return time.process_time() - started


async def measure_frames(stock_rt: Any, patched_rt: Any) -> tuple[list[float], list[float]]:
    """FRAME_PAIRS pairs of blocks, stock and patched back to back (order alternating)."""
    messages = audio_delta_messages()
    stock: list[float] = []
    patched: list[float] = []
    for _ in range(2):  # untimed warm-up
        await frame_block(stock_rt, messages, False)
        await frame_block(patched_rt, messages, True)
    gc.collect()
    gc.disable()
    try:
        for pair in range(FRAME_PAIRS):
            for mode in ("stock", "patched") if pair % 2 else ("patched", "stock"):
                if mode == "stock":
                    stock.append(await frame_block(stock_rt, messages, False))
                else:
                    patched.append(await frame_block(patched_rt, messages, True))
    finally:
        gc.enable()
    return stock, patched


async def measure(
    rounds: int,
) -> tuple[list[float], list[float], list[float], list[float]]:
    """Per-event rounds, then receive-loop blocks, on two sessions: one started on stock
    upstream, one patched.

    Each per-event round runs the other mode right after (order alternating), so machine
    drift hits both modes alike.
    """
    stock: list[float] = []
    patched: list[float] = []
    async with OpenAIRealtimeServer() as server_a, OpenAIRealtimeServer() as server_b:
        livekit_ext.revert()
        async with openai_realtime_session(server_a) as (session_a, rec_a):
            livekit_ext.apply()
            async with openai_realtime_session(server_b) as (session_b, rec_b):
                stock_rt = session_a._activity._rt_session
                patched_rt = session_b._activity._rt_session
                stock_dispatch = dispatcher(stock_rt, DELTAS)
                patched_dispatch = dispatcher(patched_rt, DELTAS)
                for r in range(rounds):
                    for mode in ("stock", "patched") if r % 2 else ("patched", "stock"):
                        # switching swaps class attributes, which sends the interpreter's
                        # specialised call sites back to cold: a few utterances, untimed, first
                        if mode == "stock":
                            livekit_ext.revert()
                            run_round(stock_dispatch, session_a, rec_a, "w", False, WARM_UTTERANCES)
                            stock.append(run_round(stock_dispatch, session_a, rec_a, "s", False))
                        else:
                            livekit_ext.apply()
                            run_round(
                                patched_dispatch, session_b, rec_b, "w", True, WARM_UTTERANCES
                            )
                            patched.append(run_round(patched_dispatch, session_b, rec_b, "p", True))
                        await asyncio.sleep(0)  # let the sessions' tasks drain
                livekit_ext.apply()
                frames_stock, frames_patched = await measure_frames(stock_rt, patched_rt)
    return stock, patched, frames_stock, frames_patched


def import_overhead_ms(samples: int = 5) -> float:
    code = (  # GC off: a full collection billed to whichever import crosses its threshold
        "import gc, time\ngc.disable()\n"
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


def paired_ratio(stock: list[float], patched: list[float]) -> float:
    """Median of patched / stock over pairs measured back to back: cancels the drift."""
    return statistics.median(pt / st for st, pt in zip(stock, patched, strict=True))


async def main() -> None:
    stock, patched, frames_stock, frames_patched = await measure(rounds(ROUNDS))
    events = UTTERANCES * (DELTAS + 3)
    s, p = statistics.median(stock), statistics.median(patched)
    print(f"raw events per round: {events} ({UTTERANCES} utterances), rounds: {len(stock)} each")
    print(f"stock:   {s * 1e6 / events:.1f} us/event (median CPU)")
    print(f"patched: {p * 1e6 / events:.1f} us/event (median CPU)")
    print(f"ratio of the medians: {p / s:.2f}")
    fs, fp = statistics.median(frames_stock), statistics.median(frames_patched)
    print(
        f"receive loop per audio-delta frame ({len(AUDIO_DELTA_B64)} B base64), before the "
        f"handler: stock {fs * 1e6 / FRAME_BLOCK:.1f} us, patched {fp * 1e6 / FRAME_BLOCK:.1f} us"
        f" ({len(frames_stock)} blocks of {FRAME_BLOCK} frames each)"
    )
    print(
        f"receive-loop frame ratio: {paired_ratio(frames_stock, frames_patched):.2f}"
        " (target <= 1.05)"
    )
    print(f"import livekit_ext on top of livekit-agents + plugins: {import_overhead_ms():.1f} ms")
    print(f"overhead ratio: {paired_ratio(stock, patched):.2f}")


if __name__ == "__main__":
    asyncio.run(main())
