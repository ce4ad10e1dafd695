"""``python -m livekit_ext demo``: a real AgentSession with the real realtime plugin against the
bundled loopback server, printing one line per utterance as it evolves.

The loopback server replays what a realtime model says it heard — with one digit of the
caller's phone number wrong — and, when a parallel STT is available, its transcript of the
same utterance appears next to it, tagged and keyed by the same item id.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import livekit_ext
from livekit_ext.testing import OpenAIRealtimeServer
from livekit_ext.testing import openai_server as oai

CALLER = [
    ("item_hello", ["hi", " I'd like a call back"], "hi I'd like a call back"),
    (
        "item_number",
        ["my number is", " four seven", " nine one", " two three", " five three"],
        "my number is four seven nine one two three five three",
    ),  # the caller said "five eight"
]


class UtteranceTable:
    """Prints a line per utterance whenever its transcript changes."""

    def __init__(self, session: Any, started: float) -> None:
        self.started = started
        self.rows: dict[str, dict[str, str]] = {}
        utterances = livekit_ext.Utterances(session)
        for name in ("utterance_started", "utterance_updated", "utterance_final"):
            utterances.on(name, self.update)

    def update(self, u: livekit_ext.Utterance) -> None:
        row = self.rows.setdefault(u.item_id, {"realtime": "", "stt": ""})
        row[u.source or "realtime"] = u.transcript + (" ✓" if u.final else "")
        start = f"+{u.speech_started_at - self.started:5.2f}s" if u.speech_started_at else "   ?   "
        print(f"{u.item_id:<14} {start}  realtime: {row['realtime']:<58} stt: {row['stt'] or '-'}")


async def _offline(provider: str) -> int:
    from livekit.agents import Agent, AgentSession
    from livekit.plugins import openai

    if provider != "openai":
        print("the offline demo replays the OpenAI wire protocol; Gemini: see tests/scenarios")
        return 2
    async with OpenAIRealtimeServer() as server:
        model = openai.realtime.RealtimeModel(base_url=server.base_url, api_key="demo")
        session: AgentSession[Any] = AgentSession(llm=model)
        table = UtteranceTable(session, time.time())
        await session.start(Agent(instructions="Take the caller's phone number."))
        await server.wait_for_client_event("session.update")
        for item_id, deltas, final in CALLER:
            await server.send(oai.speech_started(item_id))
            await asyncio.sleep(0.4)
            await server.send(oai.speech_stopped(item_id))
            for delta in deltas:
                await server.send(oai.transcription_delta(item_id, delta))
                await asyncio.sleep(0.1)
            await server.send(oai.transcription_completed(item_id, final))
            await asyncio.sleep(0.3)
        await session.aclose()
        print(f"{len(table.rows)} utterances; status: {dict(livekit_ext.status())}")
    return 0


def run_demo(*, provider: str = "openai", live: bool = False) -> int:
    logging.basicConfig(level=logging.ERROR)
    if live:
        print("--live needs real credentials and network; not available in this build")
        return 2
    return asyncio.run(_offline(provider))
