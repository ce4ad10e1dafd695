#!/usr/bin/env python3
"""Instructions per utterance, stock against patched, counted by Valgrind instead of timed.

    python scripts/count_instructions.py            # the soak's drive (Utterances, transcripts())
    python scripts/count_instructions.py --traces   # bench_traces.py's drive (a recording tracer)

Each mode runs in its own process under ``valgrind --tool=cachegrind`` twice, through
``SMALL`` and ``LARGE`` utterances of the real OpenAI realtime session (raw server events
through the session handlers, as ``_drive`` does); the difference of the two counts is the
instructions of ``LARGE - SMALL`` utterances, start-up and imports cancelled. What is left
varies by about half a percent between runs (start-up work depends on timing), against one to
two percent for the timed ratios. It answers "does the extension make the process do more
work?", not "does it take longer": in the soak's drive the patched child executes fewer
instructions than stock and still takes ~5% longer (docs/benchmark-history.md). Needs ``valgrind`` on the PATH; ~10 minutes. Last line: ``instruction ratio: X.XXX``
(patched / stock, per utterance).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
from typing import Any

SMALL, LARGE = 300, 2300
FORGET_EVERY = 50  # utterances between emptying upstream's history (it looks items up linearly)


async def drive(mode: str, count: int, traces: bool) -> None:
    """One session through ``count`` utterances: the soak's (``traces``: bench_traces')."""
    from contextlib import nullcontext

    from _drive import dispatcher, forget_history, utterance_events

    import livekit_ext
    from livekit_ext.testing import OpenAIRealtimeServer
    from livekit_ext.testing.sessions import openai_realtime_session

    deltas = 5 if traces else 2
    spans: Any = nullcontext()
    if traces:
        from livekit_ext.testing.traces import recording_spans

        spans = recording_spans()
    with spans as exporter:
        if mode == "stock":
            livekit_ext.revert()
        async with (
            OpenAIRealtimeServer() as server,
            openai_realtime_session(server) as (session, rec),
        ):
            dispatch, _ = dispatcher(session._activity._rt_session, deltas)
            views: Any = None
            if mode == "patched" and not traces:  # what the soak attaches
                views = (livekit_ext.Utterances(session), livekit_ext.transcripts(session))
            session.on("user_input_transcribed", lambda ev: None)
            for n in range(count):
                for event in utterance_events(n, mode, deltas):
                    dispatch(json.dumps(event))
                if n % FORGET_EVERY == FORGET_EVERY - 1:
                    forget_history(session)
                    rec.transcripts.clear()
                    if exporter is not None:
                        exporter.clear()
            del views


def instructions(mode: str, count: int, traces: bool) -> int:
    """Instructions one child process executes, start to end (cachegrind's ``I refs``)."""
    command = [
        "valgrind",
        "--tool=cachegrind",
        "--cache-sim=no",
        "--cachegrind-out-file=/dev/null",
        sys.executable,
        __file__,
        "--child",
        mode,
        str(count),
        *(["--traces"] if traces else []),
    ]
    # one hash seed for every child: string hashes steer dict probing, a few instructions each
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if done.returncode or found is None:
        raise SystemExit(f"{mode} x{count} failed under valgrind:\n{done.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--traces", action="store_true", help="bench_traces.py's drive")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "COUNT"))
    args = parser.parse_args()
    if args.child:
        asyncio.run(drive(args.child[0], int(args.child[1]), args.traces))
        return 0
    if shutil.which("valgrind") is None:
        print("instruction ratio: not measured (valgrind is not installed)")
        return 2
    per_utterance = {}
    for mode in ("stock", "patched"):
        small = instructions(mode, SMALL, args.traces)
        large = instructions(mode, LARGE, args.traces)
        per_utterance[mode] = (large - small) / (LARGE - SMALL)
        print(f"{mode:>7}: {per_utterance[mode]:,.0f} instructions an utterance")
    print(f"instruction ratio: {per_utterance['patched'] / per_utterance['stock']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
