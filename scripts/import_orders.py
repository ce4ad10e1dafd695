#!/usr/bin/env python3
"""Every order of importing livekit_ext, livekit.agents and the two plugins gets every feature.

    python scripts/import_orders.py                       # the 24 orders, with this python
    python scripts/import_orders.py --python VENV/bin/python --sample 4 --jobs 2

Each order runs in a fork of a worker interpreter that has loaded only third-party libraries
(no livekit module, no livekit_ext: ``_PRELOAD``, ~40% of the CPU time an order costs): it
imports the four modules in that order, then asks
``livekit_ext.status()`` (every feature must be ``patched`` or ``native``) and drives one user
transcript through the real OpenAI plugin over the loopback server (the event must carry
``item_id``, ``speech_started_at`` and ``source``). One line per order, then
``import orders: N/M ok``; the exit status is 1 if any order failed.

``--sample K`` runs K orders, always including those that import a plugin before
livekit.agents with livekit_ext first (the plugin is then half imported when livekit.agents'
own import completes, which is where a release can go wrong).
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MODULES = ("livekit_ext", "livekit.agents", "livekit.plugins.openai", "livekit.plugins.google")
ORDERS: tuple[tuple[str, ...], ...] = tuple(itertools.permutations(MODULES))

# Loaded once per worker before any order: third-party libraries livekit imports anyway (about
# 40% of a child's CPU time), never a livekit module or livekit_ext. Each order then runs in a
# fork of the worker, so the four modules are imported for the first time there, in its order.
_PRELOAD = (
    "asyncio aiohttp pydantic numpy psutil ssl json opentelemetry.sdk.trace "
    "openai google.genai google.cloud.speech cryptography"
)

# The worker: preload, then one fork per order read from stdin; each child prints one JSON
# line (its verdict, or the error that ended it) on the worker's stdout.
_WORKER = """
import importlib, json, os, sys, traceback
for name in sys.argv[1].split():
    try:
        importlib.import_module(name)
    except ImportError:
        pass
assert not [m for m in sys.modules if m.startswith(("livekit.", "livekit_ext"))]
for line in sys.stdin:
    order = json.loads(line)
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
        try:
            verdict = {"order": order, **CHILD(order)}
        except BaseException:
            verdict = {"order": order, "error": traceback.format_exc().strip().splitlines()[-1]}
        print(json.dumps(verdict), flush=True)
        os._exit(0)
    os.waitpid(pid, 0)
"""

# What a child does: the order's imports, then the verdict.
_CHILD = """
def CHILD(order):
    import asyncio, importlib
    for name in order:
        importlib.import_module(name)
    import livekit_ext
    from livekit_ext.testing import OpenAIRealtimeServer, openai_server as oai
    from livekit_ext.testing.sessions import openai_realtime_session

    async def one_transcript():
        async with OpenAIRealtimeServer() as server, openai_realtime_session(server) as (s, rec):
            await server.send(
                oai.speech_started("item_1", audio_start_ms=0),
                oai.transcription_completed("item_1", "hello"),
            )
            (final,) = await rec.wait_for_finals(1)
            return {k: getattr(final, k, None) for k in ("item_id", "speech_started_at", "source")}

    status = {name: [s.state, s.reason] for name, s in livekit_ext.status().items()}
    return {"status": status, "event": asyncio.run(one_transcript())}
"""


@dataclass(frozen=True)
class Outcome:
    order: tuple[str, ...]
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    def line(self) -> str:
        verdict = "ok" if self.ok else "FAIL: " + "; ".join(self.problems)
        return f"{' > '.join(self.order)}: {verdict}"


def run_orders(python: str, orders: list[tuple[str, ...]], timeout: float = 600.0) -> list[Outcome]:
    """Run ``orders`` one after the other in forks of one ``python`` worker."""
    try:
        done = subprocess.run(
            [python, "-W", "ignore", "-c", _CHILD + _WORKER, _PRELOAD],
            cwd=ROOT,
            input="".join(json.dumps(order) + "\n" for order in orders),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return [Outcome(order, (f"no answer within {timeout:.0f}s",)) for order in orders]
    verdicts = {}
    for line in done.stdout.splitlines():
        if line.startswith("{"):
            verdict = json.loads(line)
            verdicts[tuple(verdict["order"])] = verdict
    tail = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
    return [judge(order, verdicts.get(order), tail) for order in orders]


def judge(order: tuple[str, ...], verdict: dict[str, Any] | None, tail: str) -> Outcome:
    """What the order got: every feature patched or native, one enriched transcript."""
    if verdict is None:
        return Outcome(order, (f"no verdict: {tail}",))
    if "error" in verdict:
        return Outcome(order, (verdict["error"],))
    problems = [
        f"{name} {state} ({reason})"
        for name, (state, reason) in verdict["status"].items()
        if state not in ("patched", "native")
    ]
    event = verdict["event"]
    if event["item_id"] != "item_1":
        problems.append(f"item_id {event['item_id']!r}")
    if not isinstance(event["speech_started_at"], float):
        problems.append(f"speech_started_at {event['speech_started_at']!r}")
    if event["source"] != "realtime":
        problems.append(f"source {event['source']!r}")
    return Outcome(order, tuple(problems))


def sample(count: int) -> list[tuple[str, ...]]:
    """``count`` orders: first those where livekit_ext comes first and a plugin imports
    livekit.agents, then the rest spread over the list."""
    risky = [
        o
        for o in ORDERS
        if o[0] == "livekit_ext" and o.index("livekit.agents") > 1  # a plugin before agents
    ]
    rest = [o for o in ORDERS if o not in risky]
    step = max(1, len(rest) // max(1, count - len(risky)))
    return (risky + rest[::step])[:count]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=sys.executable, help="the interpreter to test")
    parser.add_argument("--sample", type=int, help="run this many orders, not all 24")
    parser.add_argument("--jobs", type=int, default=2, help="orders run at once (default 2)")
    args = parser.parse_args()
    orders = sample(args.sample) if args.sample else list(ORDERS)
    shares = [orders[n :: args.jobs] for n in range(args.jobs)]
    with ThreadPoolExecutor(args.jobs) as pool:
        by_share = list(pool.map(lambda share: run_orders(args.python, share), shares))
    outcomes = [outcome for share in by_share for outcome in share]
    for outcome in outcomes:
        print(outcome.line(), flush=True)
    passed = sum(o.ok for o in outcomes)
    print(f"import orders: {passed}/{len(outcomes)} ok")
    return 0 if passed == len(outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
