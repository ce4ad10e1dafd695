#!/usr/bin/env python3
"""CPU cost of the parallel STT path over a whole simulated session.

Runs a real AgentSession (real OpenAI realtime plugin against the loopback server) for
``SECONDS`` of audio fed ``SPEED`` times faster than real time, with a scripted STT on the
same audio that does no recognition work (it only emits canned START / interim / final /
END events by audio time). The realtime server transcribes one utterance every ``CYCLE``
seconds and the STT hears the same ones; the application has one plain-function
``user_input_transcribed`` handler (``--listeners``). Each round runs the session with
``enable_parallel_stt``, without it (upstream drops the STT transcripts), and without it
again (the noise floor), alternating the order; CPU is ``time.process_time()`` around the
session, the loopback server included. Last line: ``parallel-stt cpu ratio: X.XX``, median
CPU with over median CPU without; target <= 1.05.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any

import livekit_ext
from livekit_ext import identity
from livekit_ext.testing import OpenAIRealtimeServer
from livekit_ext.testing import openai_server as oai
from livekit_ext.testing.audio import PacedAudioInput
from livekit_ext.testing.stt import Say, ScriptedSTT

SECONDS = 60.0
SPEED = 30.0
CYCLE = 3.0  # one utterance per cycle: speech from 0.2 s to 1.6 s into it
INTERIMS = 6
ROUNDS = 10


def stt_script(seconds: float) -> list[Say]:
    script: list[Say] = []
    for n in range(int(seconds // CYCLE)):
        base = n * CYCLE
        script.append(Say(base + 0.2, "start"))
        words = [f"word{i}" for i in range(INTERIMS)]
        for i in range(INTERIMS):
            script.append(Say(base + 0.3 + 0.2 * i, "interim", " ".join(words[: i + 1])))
        script.append(Say(base + 1.5, "final", " ".join(words)))
        script.append(Say(base + 1.6, "end"))
    return script


def realtime_timeline(seconds: float) -> list[tuple[float, list[dict[str, Any]]]]:
    timeline: list[tuple[float, list[dict[str, Any]]]] = []
    for n in range(int(seconds // CYCLE)):
        base, item = n * CYCLE, f"item_{n}"
        timeline.append((base + 0.3, [oai.speech_started(item, round((base + 0.2) * 1000))]))
        timeline.append(
            (
                base + 1.7,
                [
                    oai.speech_stopped(item, round((base + 1.6) * 1000)),
                    oai.committed(item, f"item_{n - 1}" if n else None),
                    *(oai.transcription_delta(item, f" word{i}") for i in range(INTERIMS)),
                    oai.transcription_completed(item, "word0 word1 word2 word3 word4 word5"),
                ],
            )
        )
    return timeline


async def until(mic: PacedAudioInput, audio_time: float) -> None:
    """Sleep until the microphone delivered ``audio_time`` seconds (few wake-ups: less noise)."""
    while mic.audio_time < audio_time:
        await asyncio.sleep(max((audio_time - mic.audio_time) / mic.speed, 0.001))


@dataclass
class Run:
    arm: str
    cpu: float
    wall: float
    stt_events: int
    realtime_events: int
    user_messages: int


async def one_session(*, enabled: bool, seconds: float, speed: float, listeners: int) -> Run:
    from livekit.agents import Agent, AgentSession
    from livekit.plugins import openai

    async with OpenAIRealtimeServer() as server:
        model = openai.realtime.RealtimeModel(base_url=server.base_url, api_key="test")
        session: AgentSession[Any] = AgentSession(llm=model, stt=ScriptedSTT(stt_script(seconds)))
        mic = PacedAudioInput(speed=speed)
        session.input.audio = mic
        counts = {"stt": 0, "realtime": 0, "user": 0}

        def on_item(ev: Any) -> None:
            counts["user"] += getattr(ev.item, "role", None) == "user"

        session.on("conversation_item_added", on_item)
        for _ in range(listeners):
            # an application's handler: a plain function (the emitter inspects the signature
            # of every listener on every event; a builtin like list.append costs far more)
            def on_transcribed(ev: Any) -> None:
                source = identity(ev).source
                if source is not None:
                    counts[source] += 1

            session.on("user_input_transcribed", on_transcribed)

        gc.collect()
        wall, cpu = time.perf_counter(), time.process_time()
        if enabled:
            livekit_ext.enable_parallel_stt(session)
        await session.start(Agent(instructions="benchmark"))
        await server.wait_for_client_event("session.update")
        for audio_time, batch in realtime_timeline(seconds):
            await until(mic, audio_time)
            await server.send(*batch, validate=False)
        await until(mic, seconds)
        mic.close()
        await session.aclose()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        await model.aclose()  # its own HTTP session: AgentSession.aclose() leaves it open

    n = max(listeners, 1)
    return Run(
        arm="with" if enabled else "without",
        cpu=cpu,
        wall=wall,
        stt_events=counts["stt"] // n,
        realtime_events=counts["realtime"] // n,
        user_messages=counts["user"],
    )


ARMS = ("with", "without", "without again")  # the last one: the noise floor (A/A)


async def main(seconds: float, speed: float, rounds: int, listeners: int) -> float:
    await one_session(enabled=True, seconds=2 * CYCLE, speed=speed, listeners=listeners)  # warm
    cpu: dict[str, list[float]] = {arm: [] for arm in ARMS}
    for r in range(rounds):
        for arm in ARMS if r % 2 == 0 else tuple(reversed(ARMS)):
            run = await one_session(
                enabled=arm == "with", seconds=seconds, speed=speed, listeners=listeners
            )
            cpu[arm].append(run.cpu)
            print(
                f"round {r + 1:2d} {arm:13s}: cpu {run.cpu:6.3f}s wall {run.wall:6.3f}s "
                f"stt events {run.stt_events:4d} realtime events {run.realtime_events:4d} "
                f"user messages {run.user_messages}"
            )
    medians = {arm: statistics.median(values) for arm, values in cpu.items()}
    print(
        f"{seconds:.0f}s of audio at {speed:g}x, {rounds} rounds, {listeners} application "
        f"listener(s), livekit-agents {_version()}"
    )
    for arm in ARMS:
        print(f"median cpu {arm:13s}: {medians[arm]:.3f}s (min {min(cpu[arm]):.3f}s)")
    print(
        f"noise floor (without again / without): {medians['without again'] / medians['without']:.3f}"
    )
    return medians["with"] / medians["without"]


def _version() -> str:
    from importlib import metadata

    return metadata.version("livekit-agents")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=SECONDS)
    parser.add_argument("--speed", type=float, default=SPEED)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument(
        "--listeners", type=int, default=1, help="user_input_transcribed handlers of the app"
    )
    options = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("livekit_ext").setLevel(logging.ERROR)
    ratio = asyncio.run(main(options.seconds, options.speed, options.rounds, options.listeners))
    print(f"parallel-stt cpu ratio: {ratio:.2f}")
    sys.exit(0)
