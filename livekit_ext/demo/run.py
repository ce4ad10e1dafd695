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
import os
import time
from typing import Any

from livekit.agents import Agent, RunContext, function_tool

import livekit_ext
from livekit_ext._extras import require
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
    await _wait_for_stt_final(session)
    await server.send(*oai.function_call("resp_1", "item_call", "call_1", "save_phone_number"))
    output = await server.wait_for_client_event(
        lambda e: (
            e.get("type") == "conversation.item.create"
            and (e.get("item") or {}).get("type") == "function_call_output"
        ),
        timeout=10,
    )
    create = await server.wait_for_client_event("response.create", timeout=10)
    said = f"Thanks, I saved {json.dumps(output['item'].get('output'))}."
    metadata = (create.get("response") or {}).get("metadata")
    await server.send(*oai.assistant_reply("resp_2", "item_reply", said, metadata=metadata))
    print(f"agent: {said}", flush=True)


async def _play_gemini(
    server: Any, session: Any, mic: PacedAudioInput, meta: dict[str, Any]
) -> None:
    """Gemini's side: voiceActivity where the WAV has speech, input transcription, tool call."""
    from livekit_ext.testing import gemini_server as gem

    start = PRE_ROLL + meta["speech_start"]
    end = PRE_ROLL + meta["speech_end"]
    await _wait_for_mic(mic, start)
    await server.send(gem.voice_activity_start(audio_offset=f"{start:.3f}s"))
    await _wait_for_mic(mic, end + 0.5)
    await server.send(gem.voice_activity_end(audio_offset=f"{end:.3f}s"))
    for chunk in REALTIME_HEARD:
        await server.send(gem.input_transcription(chunk))
        await asyncio.sleep(0.05)
    await _wait_for_stt_final(session)
    await server.send(gem.tool_call("save_phone_number", {}, "call_1"), gem.turn_complete())
    await server.wait_for_client_event(
        lambda e: "tool_response" in e or "toolResponse" in e, timeout=10
    )
    said = "Thanks, I saved your number."
    await server.send(gem.output_transcription(said), gem.turn_complete())
    print(f"agent: {said}", flush=True)


async def _wait_for_mic(mic: PacedAudioInput, offset: float) -> None:
    """Until the microphone has delivered ``offset`` seconds of audio."""
    while mic.audio_time < offset:
        await asyncio.sleep(0.02)


async def _wait_for_stt_final(session: Any, timeout: float = 10.0) -> None:
    log = livekit_ext.transcripts(session)
    deadline = time.monotonic() + timeout
    while log.latest(source="stt") is None and time.monotonic() < deadline:
        await asyncio.sleep(0.05)


async def _wait_for_audio(server: OpenAIRealtimeServer, ms: int, rate: int) -> None:
    """Until the server has received ``ms`` of audio (the plugin sends 16-bit mono PCM)."""

    def received_ms() -> float:
        total = sum(
            len(e.get("audio", "")) * 3 // 4
            for e in server.client_events_of("input_audio_buffer.append")
        )
        return total / 2 / rate * 1000

    await server.wait_until(lambda: received_ms() >= ms, timeout=30)


async def _offline(provider: str) -> int:
    async with _loopback(provider) as server:
        model = _model(provider, server)
        session, mic, meta = _phone_call_session(model)
        table = UtteranceTable(session, time.time())
        agent = PhoneAgent()
        print(f"caller says: {' '.join(meta['words'])}  (digits {meta['digits']})", flush=True)
        await session.start(agent)
        try:
            if provider == "gemini":
                play = _play_gemini(server, session, mic, meta)
            else:
                play = _play_the_model(server, session, meta, 24000)
            await asyncio.wait_for(play, timeout=40)
        finally:
            mic.close()
            await session.aclose()
            await model.aclose()
        print(
            json.dumps(
                {
                    "provider": provider,
                    "utterances": len(table.rows),
                    "saved": agent.saved,
                    "expected": meta["digits"],
                }
            )
        )
        return 0 if agent.saved == meta["digits"] else 1


def _phone_call_session(model: Any) -> tuple[Any, PacedAudioInput, dict[str, Any]]:
    """The realtime ``model`` with PocketSphinx in parallel, the recorded call as microphone."""
    from livekit.agents import AgentSession

    from .sphinx_stt import PocketSphinxSTT

    frames, meta = load_phone_number()
    rate = frames[0].sample_rate
    session: AgentSession[Any] = AgentSession(llm=model, stt=PocketSphinxSTT())
    livekit_ext.enable_parallel_stt(session)
    mic = PacedAudioInput(sample_rate=rate)
    mic.push(silence(PRE_ROLL, sample_rate=rate))
    mic.push(frames)
    session.input.audio = mic
    return session, mic, meta


def _loopback(provider: str) -> Any:
    if provider == "gemini":
        from livekit_ext.testing.gemini_server import GeminiLiveServer

        return GeminiLiveServer()
    return OpenAIRealtimeServer()


def _model(provider: str, server: Any) -> Any:
    if provider == "gemini":
        return server.realtime_model()
    from livekit.plugins import openai

    return openai.realtime.RealtimeModel(base_url=server.base_url, api_key="demo")


async def _live(provider: str) -> int:
    """The same session against the real service (keys from the environment), the WAV as mic.

    Not exercised by the test suite: it needs credentials and a network this build has not.
    """
    key = "GOOGLE_API_KEY" if provider == "gemini" else "OPENAI_API_KEY"
    if not os.environ.get(key):
        print(f"--live talks to the real service: set {key}")
        return 2
    if provider == "gemini":
        from livekit.plugins import google

        model: Any = google.realtime.RealtimeModel()
    else:
        from livekit.plugins import openai

        model = openai.realtime.RealtimeModel()
    session, mic, meta = _phone_call_session(model)
    UtteranceTable(session, time.time())
    agent = PhoneAgent()
    await session.start(agent)
    try:
        await asyncio.sleep(PRE_ROLL + meta["speech_end"] + 10)
    finally:
        mic.close()
        await session.aclose()
    print(json.dumps({"provider": provider, "saved": agent.saved, "expected": meta["digits"]}))
    return 0


def require_extras(provider: str) -> None:
    """Fail before anything starts when an extra the demo needs is missing."""
    require("the demo's parallel STT (PocketSphinx)", "demo", "pocketsphinx")
    if provider == "gemini":
        require("the demo with --provider gemini", "google", "livekit.plugins.google")
        require("the demo's Gemini loopback server (TLS)", "demo", "cryptography")
    else:
        require("the demo", "openai", "livekit.plugins.openai")


def run_demo(*, provider: str = "openai", live: bool = False) -> int:
    """Raises ``MissingExtra`` (one line naming the extra) when a dependency is missing."""
    require_extras(provider)
    logging.basicConfig(level=logging.ERROR)
    return asyncio.run(_live(provider) if live else _offline(provider))
