#!/usr/bin/env python3
"""How early a handler hears of a user utterance: stock vs patched, over the loopback servers.

One 3 s utterance with realistic timing, sent by the loopback server to the real plugin in a
real AgentSession:

- OpenAI (server VAD): ``speech_started`` at 0 s, ``speech_stopped`` at 3.0 s, transcription
  deltas at 3.3 / 3.5 s, the completed at 3.8 s (every transcript comes after speech stops);
- Gemini: ``voiceActivity`` ACTIVITY_START at 0 s, ``interimInputTranscription`` every 0.5 s
  while the user speaks, ACTIVITY_END at 3.0 s, the final ``inputTranscription`` at 3.3 s and
  ``turnComplete`` at 3.5 s.

Measured from when the speech-start frame was sent (loopback: it arrives within a
millisecond) to (a) the utterance's start as a handler sees it and (b) its first visible
text. Stock (``livekit_ext.revert()``): a ``user_input_transcribed`` handler, the best a stock
application has. Patched: ``livekit_ext.Utterances`` (``utterance_started``; the first
``utterance_updated``/``utterance_final`` with text) and, for Gemini,
``gemini_interim_transcripts``. Medians over ``ROUNDS``. A measurement, not a test: it
reports, it does not gate. Last line: both figures.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import livekit_ext
from livekit_ext.testing import OpenAIRealtimeServer
from livekit_ext.testing import gemini_server as gem
from livekit_ext.testing import openai_server as oai
from livekit_ext.testing.gemini_server import GeminiLiveServer
from livekit_ext.testing.sessions import gemini_realtime_session, openai_realtime_session

ROUNDS = 3
Script = list[tuple[float, list[dict[str, Any]]]]


def openai_script(item: str) -> Script:
    return [
        (0.0, [oai.speech_started(item, 0)]),
        (3.0, [oai.speech_stopped(item, 3000)]),
        (3.3, [oai.transcription_delta(item, "my number")]),
        (3.5, [oai.transcription_delta(item, " is four five")]),
        (3.8, [oai.transcription_completed(item, "my number is four five")]),
    ]


def gemini_script() -> Script:
    words = ["my", "number", "is", "four", "five", "eight"]
    script: Script = [(0.0, [gem.voice_activity_start()])]
    script += [
        (0.5 * i, [gem.interim_input_transcription(" ".join(words[:i]))]) for i in range(1, 6)
    ]
    script += [
        (3.0, [gem.voice_activity_end()]),
        (3.3, [gem.input_transcription("My number is four five eight.")]),
        (3.5, [gem.turn_complete()]),
    ]
    return script


class Watch:
    """When the utterance started and first showed text, as the application saw them."""

    def __init__(self, session: Any, patched: bool) -> None:
        self.started: float | None = None
        self.text: float | None = None
        if patched:
            utterances = livekit_ext.Utterances(session)
            utterances.on("utterance_started", lambda u: self._start())
            utterances.on("utterance_updated", lambda u: self._text(u.transcript))
            utterances.on("utterance_final", lambda u: self._text(u.transcript))
            self._utterances = utterances
        else:
            session.on("user_input_transcribed", lambda ev: self._stock(ev.transcript))

    def _start(self) -> None:
        self.started = self.started or time.time()

    def _text(self, text: str) -> None:
        if text:
            self.text = self.text or time.time()

    def _stock(self, text: str) -> None:
        self._start()
        self._text(text)


async def play(send: Callable[..., Awaitable[None]], script: Script, watch: Watch) -> float:
    t0 = time.time()
    for at, events in script:
        await asyncio.sleep(max(0.0, t0 + at - time.time()))
        await send(*events)
    deadline = time.monotonic() + 3
    while watch.text is None and time.monotonic() < deadline:
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.1)
    return t0


async def one_openai(server: OpenAIRealtimeServer, patched: bool, n: int) -> tuple[float, float]:
    async with openai_realtime_session(server) as (session, _):
        watch = Watch(session, patched)
        t0 = await play(server.send, openai_script(f"item_{n}"), watch)
    assert watch.started is not None and watch.text is not None
    return watch.started - t0, watch.text - t0


async def one_gemini(server: GeminiLiveServer, patched: bool) -> tuple[float, float]:
    async with gemini_realtime_session(server) as (session, _):
        if patched:
            livekit_ext.gemini_interim_transcripts(session.llm)
        watch = Watch(session, patched)
        t0 = await play(server.send, gemini_script(), watch)
    assert watch.started is not None and watch.text is not None
    return watch.started - t0, watch.text - t0


def ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


async def main() -> None:
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    async with OpenAIRealtimeServer() as oai_server, GeminiLiveServer() as gem_server:
        for n in range(ROUNDS):
            for mode in ("stock", "patched"):
                if mode == "stock":
                    livekit_ext.revert()
                else:
                    livekit_ext.apply()
                got = await one_openai(oai_server, mode == "patched", n)
                results.setdefault(("openai", mode), []).append(got)
                got = await one_gemini(gem_server, mode == "patched")
                results.setdefault(("gemini", mode), []).append(got)
    livekit_ext.apply()
    for (provider, mode), runs in sorted(results.items()):
        print(
            f"{provider:7s} {mode:8s} utterance_started {ms([r[0] for r in runs]):7.1f} ms  "
            f"first text {ms([r[1] for r in runs]):7.1f} ms  (median of {len(runs)})"
        )
    started = max(ms([r[0] for r in results[(p, "patched")]]) for p in ("openai", "gemini"))
    gemini_gain = ms([r[1] for r in results[("gemini", "stock")]]) - ms(
        [r[1] for r in results[("gemini", "patched")]]
    )
    print(
        f"utterance_started after speech-start frame (patched, worst of OpenAI/Gemini): "
        f"{started:.1f} ms (target <= 50); Gemini first visible text earlier than stock by "
        f"{gemini_gain / 1000:.2f} s (target >= 2)"
    )


if __name__ == "__main__":
    asyncio.run(main())
