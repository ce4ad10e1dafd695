"""``python -m livekit_ext demo``: a caller gives a phone number; the realtime model mishears a
digit, the parallel STT gets it right, and a function tool reads the STT's transcript.

Everything is real but the model's side of the socket: a real ``AgentSession`` with the real
OpenAI realtime plugin connected to the bundled loopback server, a recorded WAV as the
microphone, PocketSphinx (offline, digits grammar) as the parallel STT. The loopback server
plays the model: it reports the speech where the WAV has it, replays a transcript with one
digit wrong, and calls the ``save_phone_number`` tool.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from livekit.agents import Agent, RunContext, function_tool

import livekit_ext
from livekit_ext.testing import OpenAIRealtimeServer
from livekit_ext.testing import openai_server as oai
from livekit_ext.testing.audio import PacedAudioInput, silence

from .audio import load_phone_number

REALTIME_HEARD = ["my number is", " four seven", " nine one", " two three", " five three"]
"""What the (replayed) realtime model transcribes: the caller said "five eight"."""

PRE_ROLL = 0.5  # seconds of silence before the recording


class UtteranceTable:
    """One line per utterance update: item id, speech start, realtime and STT transcripts."""

    def __init__(self, session: Any, started: float) -> None:
        self.started = started
        self.rows: dict[str, dict[str, str]] = {}
        # one view per engine: each reports its own final for the shared item id
        for source in ("realtime", "stt"):
            utterances = livekit_ext.Utterances(session, source=source)
            for name in ("utterance_started", "utterance_updated", "utterance_final"):
                utterances.on(name, self.update)

    def update(self, u: livekit_ext.Utterance) -> None:
        row = self.rows.setdefault(u.item_id, {"realtime": "", "stt": ""})
        if u.source is not None:
            row[u.source] = u.transcript + (" [final]" if u.final else "")
        start = f"+{u.speech_started_at - self.started:5.2f}s" if u.speech_started_at else "   ?   "
        print(
            f"{u.item_id:<16} speech {start}  realtime: {row['realtime'] or '-':<48}"
            f"  stt: {row['stt'] or '-'}",
            flush=True,
        )


class PhoneAgent(Agent):
    """Takes the caller's number; its tool trusts the phone-number STT over the model."""

    def __init__(self) -> None:
        super().__init__(instructions="Take the caller's phone number and save it.")
        self.saved: str | None = None

    @function_tool
    async def save_phone_number(self, context: RunContext) -> str:  # type: ignore[type-arg]
        """Save the caller's phone number, as the dedicated phone-number STT heard it."""
        log = livekit_ext.transcripts(context.session)
        stt, realtime = log.latest(source="stt"), log.latest(source="realtime")
        self.saved = stt.transcript if stt is not None else None
        print(
            f"save_phone_number(): the STT heard {self.saved!r}, the realtime model heard "
            f"{realtime.transcript if realtime else None!r}",
            flush=True,
        )
        return f"saved {self.saved}"


async def _play_the_model(
    server: OpenAIRealtimeServer, session: Any, meta: dict[str, Any], rate: int
) -> None:
    """The model's side: speech where the WAV has it, a transcript, then the tool call."""
    start_ms = round((PRE_ROLL + meta["speech_start"]) * 1000)
    end_ms = round((PRE_ROLL + meta["speech_end"]) * 1000)
    item = "item_caller_number"
    await _wait_for_audio(server, start_ms, rate)
    await server.send(oai.speech_started(item, audio_start_ms=start_ms))
    await _wait_for_audio(server, end_ms + 500, rate)
    await server.send(oai.speech_stopped(item, audio_end_ms=end_ms))
    for delta in REALTIME_HEARD:
        await server.send(oai.transcription_delta(item, delta))
        await asyncio.sleep(0.05)
    await server.send(oai.transcription_completed(item, "".join(REALTIME_HEARD)))
    log = livekit_ext.transcripts(session)
    deadline = time.monotonic() + 10
    while log.latest(source="stt") is None and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await server.send(*oai.function_call("resp_1", "item_call", "call_1", "save_phone_number"))
    output = await server.wait_for_client_event(
        lambda e: (
            e.get("type") == "conversation.item.create"
            and (e.get("item") or {}).get("type") == "function_call_output"
        ),
        timeout=10,
    )
    await server.wait_for_client_event("response.create", timeout=10)
    said = f"Thanks, I saved {json.dumps(output['item'].get('output'))}."
    await server.send(*oai.assistant_reply("resp_2", "item_reply", said))
    print(f"agent: {said}", flush=True)


async def _wait_for_audio(server: OpenAIRealtimeServer, ms: int, rate: int) -> None:
    """Until the server has received ``ms`` of audio (the plugin sends 16-bit mono PCM)."""

    def received_ms() -> float:
        total = sum(
            len(e.get("audio", "")) * 3 // 4
            for e in server.client_events_of("input_audio_buffer.append")
        )
        return total / 2 / rate * 1000

    await server.wait_until(lambda: received_ms() >= ms, timeout=30)


async def _offline() -> int:
    from livekit.agents import AgentSession
    from livekit.plugins import openai

    from .sphinx_stt import PocketSphinxSTT

    frames, meta = load_phone_number()
    rate = frames[0].sample_rate
    async with OpenAIRealtimeServer() as server:
        model = openai.realtime.RealtimeModel(base_url=server.base_url, api_key="demo")
        session: AgentSession[Any] = AgentSession(llm=model, stt=PocketSphinxSTT())
        livekit_ext.enable_parallel_stt(session)
        mic = PacedAudioInput(sample_rate=rate)
        mic.push(silence(PRE_ROLL, sample_rate=rate))
        mic.push(frames)
        session.input.audio = mic
        started = time.time()
        table = UtteranceTable(session, started)
        agent = PhoneAgent()
        print(f"caller says: {' '.join(meta['words'])}  (digits {meta['digits']})", flush=True)
        await session.start(agent)
        try:
            await asyncio.wait_for(_play_the_model(server, session, meta, 24000), timeout=40)
        finally:
            mic.close()
            await session.aclose()
        print(
            json.dumps(
                {"utterances": len(table.rows), "saved": agent.saved, "expected": meta["digits"]}
            )
        )
        return 0 if agent.saved == meta["digits"] else 1


def run_demo(*, provider: str = "openai", live: bool = False) -> int:
    logging.basicConfig(level=logging.ERROR)
    if live:
        print("--live needs real credentials and network access; it is not part of this build")
        return 2
    if provider != "openai":
        print("the offline demo replays the OpenAI wire protocol; for Gemini see tests/scenarios")
        return 2
    return asyncio.run(_offline())
