#!/usr/bin/env python3
"""Bounded state, measured: one session through many utterances, stock vs patched.

    python scripts/soak.py                     # 100,000 utterances a mode
    python scripts/soak.py --utterances 20000

Each mode runs in its own child process (so one mode's freed memory never flatters the
other's RSS), the two in lockstep, a chunk of 100 utterances at a time: a real
AgentSession with the real OpenAI realtime plugin (connected to the loopback server) is
driven with the raw server events of every utterance through the session handlers the
receive loop calls, no sleeps (the approach of ``bench.py``, from ``_drive``). Stock:
``revert()``, a plain listener. Patched: the extension applied with ``Utterances`` and
``transcripts()`` attached. Upstream's own history (the chat contexts) is emptied every
1,000 utterances in both, as an agent that trims its context would. Printed per mode: the
peak entry count of every per-session structure of livekit_ext (sampled as it is emptied), RSS
growth over the drive, and utterances per CPU second (wall time too). The throughput ratio
is the median over chunks of stock / patched CPU time, the two modes' chunks run back to
back: the machine's speed drifts over minutes, and runs one after the other would measure
that. Targets: <= 1,000 entries, <= 20 MB RSS growth beyond stock, throughput >= 0.95x
stock. Last line: the summary.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

from _drive import dispatcher, forget_history, utterance_events

DELTAS = 2
SAMPLE_EVERY = 1000
CHUNK = 100  # utterances one mode runs before the other takes its turn
PAIRS = 3  # fresh stock/patched process pairs, each through the whole count
_SIZED = (dict, list, set, frozenset, tuple)


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    import resource

    return pages * resource.getpagesize() / 2**20


def _entries(name: str, obj: Any, depth: int = 2) -> Iterator[tuple[str, int]]:
    """``(path, len)`` of every container held by ``obj`` and by its livekit_ext members."""
    attrs = getattr(obj, "__dict__", None)
    if attrs is None and hasattr(obj, "__slots__"):
        attrs = {s: getattr(obj, s, None) for s in obj.__slots__}
    for attr, value in (attrs or {}).items():
        path = f"{name}.{attr}"
        if isinstance(value, _SIZED) or type(value).__name__ == "deque":
            yield path, len(value)
        elif depth and type(value).__module__.startswith("livekit_ext"):
            yield from _entries(path, value, depth - 1)
    if isinstance(obj, _SIZED):
        yield name, len(obj)


def structures(session: Any, rt_session: Any, utterances: Any) -> dict[str, int]:
    """Entry counts of every per-session structure of livekit_ext for this session: the state
    its features keep on the session and its realtime session (``_state.Attached``, attributes
    named ``_livekit_ext_*``), and ``Utterances``."""
    found: dict[str, int] = {}
    for owner_name, owner in (("AgentSession", session), ("RealtimeSession", rt_session)):
        for attr, state in vars(owner).items():
            if attr.startswith("_livekit_ext_"):
                found.update(_entries(f"{owner_name}.{attr.removeprefix('_livekit_ext_')}", state))
    if utterances is not None:
        found.update(_entries("Utterances", utterances))
    return found


async def drive(mode: str, count: int) -> dict[str, Any]:
    """One mode's session, CHUNK utterances each time the parent says ``run``."""
    import livekit_ext
    from livekit_ext.testing import OpenAIRealtimeServer
    from livekit_ext.testing.sessions import openai_realtime_session

    patched = mode == "patched"
    if not patched:
        livekit_ext.revert()
    async with (
        OpenAIRealtimeServer() as server,
        openai_realtime_session(server) as (session, rec),
    ):
        rt_session = session._activity._rt_session
        dispatch, per_utterance = dispatcher(rt_session, DELTAS)
        utterances = livekit_ext.Utterances(session) if patched else None
        log = livekit_ext.transcripts(session) if patched else None
        finals = 0

        def count_final(ev: Any) -> None:
            nonlocal finals
            finals += ev.is_final

        session.on("user_input_transcribed", count_final)
        peaks: dict[str, int] = {}
        rss_before = rss_mb()
        elapsed = cpu = 0.0
        for chunk_start in range(0, count, CHUNK):
            if sys.stdin.readline().strip() != "run":
                raise SystemExit("soak child: the parent stopped early")
            chunk_end = min(count, chunk_start + CHUNK)
            started, cpu_started = time.perf_counter(), time.process_time()
            for n in range(chunk_start, chunk_end):
                for event in utterance_events(n, mode, DELTAS):
                    dispatch(json.dumps(event))
            chunk_cpu = time.process_time() - cpu_started
            elapsed += time.perf_counter() - started
            cpu += chunk_cpu
            if chunk_end % SAMPLE_EVERY == 0 or chunk_end == count:
                forget_history(session)
                rec.transcripts.clear()
                if patched:
                    for path, size in structures(session, rt_session, utterances).items():
                        peaks[path] = max(peaks.get(path, 0), size)
            await asyncio.sleep(0)  # let the session's tasks drain
            print(json.dumps({"chunk_cpu": chunk_cpu}), flush=True)
        rss_after = rss_mb()
        assert finals == count, (finals, count)
        if patched:
            assert log is not None and log.latest() is not None
    livekit_ext.apply()
    return {
        "mode": mode,
        "utterances": count,
        "events_per_utterance": per_utterance,
        "seconds": elapsed,
        "cpu_seconds": cpu,
        "rss_growth_mb": rss_after - rss_before,
        "peaks": peaks,
    }


def run_children(count: int) -> tuple[dict[str, Any], dict[str, Any], list[float]]:
    """Both modes in their own processes, in lockstep: one chunk of one, then of the other
    (order alternating), so the machine's drift over minutes hits both modes alike. Returns
    each mode's summary and the per-chunk CPU ratios stock / patched (throughput ratios)."""
    children = {
        mode: subprocess.Popen(
            [sys.executable, __file__, "--child", mode, "--utterances", str(count)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for mode in ("stock", "patched")
    }

    def step(mode: str) -> dict[str, Any]:
        child = children[mode]
        assert child.stdin is not None and child.stdout is not None
        child.stdin.write("run\n")
        child.stdin.flush()
        return dict(json.loads(child.stdout.readline()))

    ratios: list[float] = []
    for chunk in range((count + CHUNK - 1) // CHUNK):
        order = ("stock", "patched") if chunk % 2 else ("patched", "stock")
        cpu = {mode: step(mode)["chunk_cpu"] for mode in order}
        ratios.append(cpu["stock"] / cpu["patched"])
    results = {}
    for mode, child in children.items():
        assert child.stdin is not None and child.stdout is not None
        child.stdin.close()
        out = child.stdout.read()  # not communicate(): readline() may hold the last line
        if child.wait():
            raise SystemExit(f"soak child {mode} failed ({child.returncode})")
        results[mode] = dict(json.loads(out.strip().splitlines()[-1]))
    return results["stock"], results["patched"], ratios


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--utterances", type=int, default=100_000)
    parser.add_argument(
        "--pairs", type=int, default=PAIRS, help="stock/patched process pairs, one after another"
    )
    parser.add_argument("--child", choices=["stock", "patched"])
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(drive(args.child, args.utterances))))
        return 0

    peaks: dict[str, int] = {}
    extra_rss: list[float] = []
    ratios: list[float] = []
    for pair in range(1, args.pairs + 1):
        stock, patched, pair_ratios = run_children(args.utterances)
        print(f"pair {pair}:")
        for result in (stock, patched):
            rate = result["utterances"] / result["cpu_seconds"]
            print(
                f"  {result['mode']:>7}: {result['utterances']} utterances in "
                f"{result['seconds']:.1f} s wall, {result['cpu_seconds']:.1f} s CPU "
                f"({rate:.0f} per CPU second), RSS growth {result['rss_growth_mb']:.1f} MB"
            )
        print(
            f"  throughput patched / stock per chunk of {CHUNK}: median "
            f"{statistics.median(pair_ratios):.3f}, whole runs "
            f"{stock['cpu_seconds'] / patched['cpu_seconds']:.3f}"
        )
        for path, size in patched["peaks"].items():
            peaks[path] = max(peaks.get(path, 0), size)
        extra_rss.append(patched["rss_growth_mb"] - stock["rss_growth_mb"])
        ratios += pair_ratios
    print("peak entries of livekit_ext's per-session structures (patched, all pairs):")
    for path, size in sorted(peaks.items()):
        print(f"  {path}: {size}")
    peak = max(peaks.values(), default=0)
    worst_rss = max(extra_rss)
    # per chunk, the two modes back to back: the median of their ratios cancels the drift;
    # pooled over process pairs: each process's memory layout (ASLR, hash seed) runs it a
    # few percent faster or slower, as pyperf's many processes account for
    speed = statistics.median(ratios)
    ok = peak <= 1000 and worst_rss <= 20 and speed >= 0.95
    print(
        f"soak: peak {peak} entries (<= 1000), RSS +{worst_rss:.1f} MB beyond stock (<= 20), "
        f"throughput {speed:.3f}x stock (>= 0.95, median of {len(ratios)} chunk pairs over "
        f"{args.pairs} process pairs): {'ok' if ok else 'MISSED'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
