#!/usr/bin/env python3
"""Cost of utterance traces: raw OpenAI server event -> ``user_input_transcribed``, with a
recording tracer provider, stock against patched.

The same OTel SDK provider (``SimpleSpanProcessor`` into an ``InMemorySpanExporter``, installed
through ``livekit.agents.telemetry.set_tracer_provider``) records both modes, so stock pays
for its own ``user_speaking`` spans and patched for the same spans carrying the utterance
(item id, times, source, the transcript: each realtime span held for its final). Drives the
real OpenAI realtime session of two real AgentSessions (one started stock, one patched) with
the raw events of many utterances through the handlers the receive loop calls, alternating
stock (``revert()``) and patched rounds in one run, as ``bench.py`` does. Also checks that
without a tracer provider none of the per-event hooks is installed. Last line:
``trace overhead ratio: X.XX`` (target <= 1.05), the median over rounds of patched / stock
CPU time per event, the two measured back to back. The line before it gives the feature's own
share: the patched session with utterance_traces working against the same with its hooks
bailing out.
"""

from __future__ import annotations

import asyncio
import json
import statistics
from typing import Any

from _drive import dispatcher, forget_history, rounds, timed_chunks, utterance_events

import livekit_ext
from livekit_ext.testing import OpenAIRealtimeServer
from livekit_ext.testing.sessions import openai_realtime_session
from livekit_ext.testing.traces import recording_spans
from livekit_ext.utterance_traces import hooks_installed

UTTERANCES = 150
WARM_UTTERANCES = 30
CHUNK = 50
DELTAS = 5
ROUNDS = 30


def run_round(
    drive: tuple[Any, int], session: Any, exporter: Any, tag: str, utterances: int
) -> float:
    """CPU seconds to dispatch ``utterances`` utterances' raw events (GC paused while timed);
    upstream's history and the exported spans are emptied between chunks, untimed."""
    dispatch, _ = drive
    frames = [json.dumps(e) for n in range(utterances) for e in utterance_events(n, tag, DELTAS)]
    per_chunk = CHUNK * (DELTAS + 3)

    def between_chunks() -> None:
        forget_history(session)
        exporter.clear()

    return timed_chunks(frames, per_chunk, dispatch, between_chunks)


def spans_carry_the_utterance(exporter: Any, patched: bool) -> None:
    spans = [s for s in exporter.get_finished_spans() if s.name == "user_speaking"]
    assert spans, "no user_speaking span recorded"
    carried = [s for s in spans if "lk.utterance.item_id" in (s.attributes or {})]
    assert bool(carried) == patched, (len(carried), patched)
    if patched:
        assert all("lk.pii.user_transcript" in (s.attributes or {}) for s in carried)


async def measure(
    rounds: int,
) -> tuple[list[float], list[float], list[float], list[float], list[str]]:
    livekit_ext.apply()
    import livekit.agents  # noqa: F401  (decides the core features)

    without_provider = hooks_installed()
    stock: list[float] = []
    patched: list[float] = []
    with recording_spans() as exporter:
        async with OpenAIRealtimeServer() as server_a, OpenAIRealtimeServer() as server_b:
            livekit_ext.revert()
            async with openai_realtime_session(server_a) as (session_a, _):
                livekit_ext.apply()
                async with openai_realtime_session(server_b) as (session_b, _):
                    drive_a = dispatcher(session_a._activity._rt_session, DELTAS)
                    drive_b = dispatcher(session_b._activity._rt_session, DELTAS)
                    for r in range(rounds):
                        for mode in ("stock", "patched") if r % 2 else ("patched", "stock"):
                            if mode == "stock":
                                livekit_ext.revert()
                                run_round(drive_a, session_a, exporter, "w", WARM_UTTERANCES)
                                spans_carry_the_utterance(exporter, patched=False)
                                stock.append(
                                    run_round(drive_a, session_a, exporter, "s", UTTERANCES)
                                )
                            else:
                                livekit_ext.apply()
                                run_round(drive_b, session_b, exporter, "w", WARM_UTTERANCES)
                                spans_carry_the_utterance(exporter, patched=True)
                                patched.append(
                                    run_round(drive_b, session_b, exporter, "p", UTTERANCES)
                                )
                            await asyncio.sleep(0)
                    livekit_ext.apply()
                    on, off = own_share(drive_b, session_b, exporter, rounds)
    return stock, patched, on, off, without_provider


def own_share(
    drive: tuple[Any, int], session: Any, exporter: Any, rounds: int
) -> tuple[list[float], list[float]]:
    """The same patched session with utterance_traces doing its work and not (its hooks bail
    out): what the feature itself adds to the rest of livekit_ext, same tracer."""
    from livekit_ext.utterance_traces import spans as utterance_traces

    on: list[float] = []
    off: list[float] = []
    try:
        for r in range(rounds):
            for enabled in (True, False) if r % 2 else (False, True):
                utterance_traces.TRACING.enabled = enabled
                run_round(drive, session, exporter, "w", WARM_UTTERANCES)
                (on if enabled else off).append(
                    run_round(drive, session, exporter, "o", UTTERANCES)
                )
    finally:
        utterance_traces.TRACING.enabled = True
    return on, off


async def main() -> None:
    stock, patched, on, off, without_provider = await measure(rounds(ROUNDS))
    events = UTTERANCES * (DELTAS + 3)
    s, p = statistics.median(stock), statistics.median(patched)
    print(
        "per-event hooks installed without a tracer provider: "
        + (", ".join(without_provider) or "none")
    )
    print(f"raw events per round: {events} ({UTTERANCES} utterances), rounds: {len(stock)} each")
    print(f"stock + tracer:   {s * 1e6 / events:.1f} us/event (median CPU)")
    print(f"patched + tracer: {p * 1e6 / events:.1f} us/event (median CPU)")
    share = statistics.median(a / b for a, b in zip(on, off, strict=True))
    print(f"utterance_traces' own share (on / off, the same patched session): {share:.2f}")
    ratio = statistics.median(pt / st for st, pt in zip(stock, patched, strict=True))
    print(f"trace overhead ratio: {ratio:.2f} (target <= 1.05)")


if __name__ == "__main__":
    asyncio.run(main())
