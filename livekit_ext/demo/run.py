"""``python -m livekit_ext demo``: a caller gives a phone number; the realtime model mishears a
digit, the parallel STT gets it right, and a function tool reads the STT's transcript.

Everything is real but the model's side of the socket: a real ``AgentSession`` with the real
OpenAI (or, ``--provider gemini``, Gemini Live) realtime plugin connected to the bundled
loopback server, a recorded WAV as the microphone, PocketSphinx (offline, digits grammar) as the
parallel STT. The loopback server plays the model: it reports the speech where the WAV has it,
replays a transcript with one digit wrong, and calls the ``save_phone_number`` tool.

The output explains itself to someone who has not read this: what is about to happen, a legend,
one row per change of what either engine heard, the tool's moment, and a closing line that is
the same for every provider. ``as_json`` keeps stdout for one JSON line (the story goes to
stderr).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from typing import Any, TextIO

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

PROVIDERS = {"openai": "OpenAI Realtime", "gemini": "Gemini Live"}

ITEM_WIDTH = 18  # "item_caller_number"; Gemini's "GI_..." ids are shorter
REALTIME_WIDTH = len("".join(REALTIME_HEARD) + " [final]")

LEGEND = (
    "one row each time either engine's transcript of the utterance changes:",
    "  item      the utterance's item_id: the realtime and the STT transcripts of the same "
    "speech share it",
    "  start     when the caller began speaking (speech_started_at), seconds after the call began",
    "  realtime  what the realtime model has heard so far, [final] once final (- nothing yet)",
    "  stt       what the parallel STT has heard so far (digits: it has a digits grammar), "
    "likewise",
)


def digits_in(text: str) -> str:
    """The digits a transcript spells out, so the two engines' answers compare at a glance."""
    from .sphinx_stt import DIGIT_WORDS  # the STT's own words (imported late, as it is)

    words = text.lower().replace(",", " ").split()
    return "".join(DIGIT_WORDS.get(w, w if w.isdigit() else "") for w in words)


class Narrator:
    """Prints the story: to stdout, or to stderr when stdout is kept for the ``--json`` line."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def __call__(self, line: str = "") -> None:
        print(line, file=self.stream, flush=True)


def introduce(say: Narrator, provider: str, meta: dict[str, Any], *, live: bool) -> None:
    """What is about to happen, and how to read the rows that follow."""
    model = (
        f"{PROVIDERS[provider]}, the live service"
        if live
        else f"{PROVIDERS[provider]}, played offline by a loopback server that mishears one digit"
    )
    say(f"A recorded caller reads out a phone number to a realtime model ({model}).")
    say(
        "A parallel STT (PocketSphinx) hears the same audio; the save_phone_number tool reads "
        "both transcripts (livekit_ext.transcripts(session)) and saves the STT's."
    )
    say()
    say(f"caller says: {' '.join(meta['words'])}  (digits {meta['digits']})")
    say()
    for line in LEGEND:
        say(line)
    say()
    say(_row("item", "start", "realtime", "stt"))


def _row(item: str, start: str, realtime: str, stt: str) -> str:
    return f"{item:<{ITEM_WIDTH}}  {start:>6}  {realtime:<{REALTIME_WIDTH}}  {stt}".rstrip()


class UtteranceTable:
    """One row per change of an utterance: item id, speech start, realtime and STT transcripts.

    Both engines report the utterance (``utterance_started`` comes from each): a row that
    would repeat the previous one of its item is not printed.
    """

    def __init__(self, session: Any, started: float, say: Narrator) -> None:
        self.started = started
        self.say = say
        self.rows: dict[str, dict[str, str]] = {}
        self._printed: dict[str, str] = {}
        # one view per engine: each reports its own final for the shared item id
        for source in ("realtime", "stt"):
            utterances = livekit_ext.Utterances(session, source=source)
            for name in ("utterance_started", "utterance_updated", "utterance_final"):
                utterances.on(name, self.update)

    def update(self, u: livekit_ext.Utterance) -> None:
        row = self.rows.setdefault(u.item_id, {"realtime": "", "stt": ""})
        if u.source is not None:
            row[u.source] = u.transcript + (" [final]" if u.final else "")
        start = f"+{u.speech_started_at - self.started:.2f}s" if u.speech_started_at else "?"
        line = _row(u.item_id, start, row["realtime"] or "-", row["stt"] or "-")
        if self._printed.get(u.item_id) != line:
            self._printed[u.item_id] = line
            self.say(line)


class PhoneAgent(Agent):
    """Takes the caller's number; its tool trusts the phone-number STT over the model."""

    def __init__(self, say: Narrator) -> None:
        super().__init__(instructions="Take the caller's phone number and save it.")
        self.say = say
        self.saved: str | None = None
        self.heard: dict[str, str | None] = {"realtime": None, "stt": None}

    @function_tool
    async def save_phone_number(self, context: RunContext) -> str:  # type: ignore[type-arg]
        """Save the caller's phone number, as the dedicated phone-number STT heard it."""
        log = livekit_ext.transcripts(context.session)
        stt = log.latest(source="stt")
        # Gemini finalises the model's transcript with its turn: take what it has heard so far
        realtime = log.latest(source="realtime") or log.latest(source="realtime", final_only=False)
        self.heard = {
            "realtime": realtime.transcript if realtime is not None else None,
            "stt": stt.transcript if stt is not None else None,
        }
        self.saved = self.heard["stt"]
        self.say()
        self.say(f">>> save_phone_number(): {self.callout()}")
        self.say()
        return self.saved or "nothing: the STT heard no number"

    def callout(self) -> str:
        """The moment that matters, in one line: what each engine heard, and what was saved."""
        realtime, stt = self.heard["realtime"], self.heard["stt"]
        return (
            f"the realtime model heard {digits_in(realtime) if realtime else 'nothing'}, "
            f"the STT heard {stt or 'nothing'}, and the tool saved {self.saved or 'nothing'}"
        )


def closing_line(saved: str | None, expected: str) -> str:
    """The demo's last line: the same for every provider, as its exit status is."""
    if saved == expected:
        return f"result: the tool saved {saved}, the number the caller said"
    return f"result: the tool saved {saved or 'nothing'}, but the caller said {expected}"


async def _play_the_model(
    server: OpenAIRealtimeServer, session: Any, meta: dict[str, Any], rate: int, say: Narrator
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
    said = _thanks(output["item"].get("output"))
    metadata = (create.get("response") or {}).get("metadata")
    await server.send(*oai.assistant_reply("resp_2", "item_reply", said, metadata=metadata))
    say(f"agent: {said}")


async def _play_gemini(
    server: Any, session: Any, mic: PacedAudioInput, meta: dict[str, Any], say: Narrator
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
    response = await server.wait_for_client_event(
        lambda e: "tool_response" in e or "toolResponse" in e, timeout=10
    )
    said = _thanks(_gemini_tool_output(response))
    await server.send(gem.output_transcription(said), gem.turn_complete())
    say(f"agent: {said}")


def _thanks(output: Any) -> str:
    """The model's reply to the tool's result: the same words whichever provider plays it."""
    return f"Thanks, I saved {output}."


def _gemini_tool_output(event: dict[str, Any]) -> Any:
    """The tool's return value in a Gemini ``toolResponse`` (either key spelling)."""
    response = event.get("toolResponse") or event.get("tool_response") or {}
    calls = response.get("functionResponses") or response.get("function_responses") or [{}]
    return (calls[0].get("response") or {}).get("output")


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


async def _offline(provider: str, say: Narrator) -> dict[str, Any]:
    async with _loopback(provider) as server:
        model = _model(provider, server)
        session, mic, meta = _phone_call_session(model)
        introduce(say, provider, meta, live=False)
        table = UtteranceTable(session, time.time(), say)
        agent = PhoneAgent(say)
        await session.start(agent)
        try:
            if provider == "gemini":
                play = _play_gemini(server, session, mic, meta, say)
            else:
                play = _play_the_model(server, session, meta, 24000, say)
            await asyncio.wait_for(play, timeout=40)
        finally:
            mic.close()
            await session.aclose()
            await model.aclose()
        return _outcome(provider, table, agent, meta)


def _outcome(
    provider: str, table: UtteranceTable, agent: PhoneAgent, meta: dict[str, Any]
) -> dict[str, Any]:
    """What the ``--json`` line reports."""
    return {
        "provider": provider,
        "utterances": len(table.rows),
        "saved": agent.saved,
        "expected": meta["digits"],
        "realtime_heard": agent.heard["realtime"],
        "stt_heard": agent.heard["stt"],
    }


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


async def _live(provider: str, say: Narrator) -> dict[str, Any] | None:
    """The same session against the real service (keys from the environment), the WAV as mic.

    Not exercised by the test suite: it needs credentials and a network this build has not.
    """
    key = "GOOGLE_API_KEY" if provider == "gemini" else "OPENAI_API_KEY"
    if not os.environ.get(key):
        print(f"--live talks to the real service: set {key}", file=sys.stderr)
        return None
    if provider == "gemini":
        from livekit.plugins import google

        model: Any = google.realtime.RealtimeModel()
    else:
        from livekit.plugins import openai

        model = openai.realtime.RealtimeModel()
    session, mic, meta = _phone_call_session(model)
    introduce(say, provider, meta, live=True)
    table = UtteranceTable(session, time.time(), say)
    agent = PhoneAgent(say)
    await session.start(agent)
    try:
        await asyncio.sleep(PRE_ROLL + meta["speech_end"] + 10)
    finally:
        mic.close()
        await session.aclose()
    return _outcome(provider, table, agent, meta)


def require_extras(provider: str) -> None:
    """Fail before anything starts when an extra the demo needs is missing."""
    require("the demo's parallel STT (PocketSphinx)", "demo", "pocketsphinx")
    if provider == "gemini":
        require("the demo with --provider gemini", "google", "livekit.plugins.google")
        require("the demo's Gemini loopback server (TLS)", "demo", "cryptography")
    else:
        require("the demo", "openai", "livekit.plugins.openai")


TRACED_SPANS = (
    "agent_session",
    "user_speaking",
    "user_turn",
    "user_transcript",
    "agent_turn",
    "realtime_inference",
)
"""The spans ``--trace`` prints (LiveKit's others, e.g. the LLM and TTS nodes, are left out)."""


def print_span_tree(say: Narrator, spans: Any, started: float) -> None:
    """The call's spans as a tree, with the utterance attributes livekit_ext put on them."""
    from livekit_ext.testing.traces import span_tree

    roots = [s.start_time / 1e9 for s in spans if s.name == "agent_session"]
    say()
    say("the call's spans (LiveKit's own, through livekit.agents.telemetry.set_tracer_provider),")
    say("with the utterance attributes livekit_ext puts on them; times from the session's start:")
    for line in span_tree(
        spans,
        names=TRACED_SPANS,
        prefixes=("lk.utterance.", "lk.pii.user_transcript", "gen_ai.response.id"),
        t0=min(roots) if roots else started,
    ):
        say("  " + line)
    say()


def run_demo(
    *, provider: str = "openai", live: bool = False, as_json: bool = False, trace: bool = False
) -> int:
    """Run the demo; 0 when the tool saved the number the caller said, else 1 (2: --live
    without keys). ``as_json``: stdout is one JSON line, and the story goes to stderr.
    ``trace``: record LiveKit's spans in memory and print their tree after the call.

    Raises ``MissingExtra`` (one line naming the extra) when a dependency is missing.
    """
    require_extras(provider)
    logging.basicConfig(level=logging.ERROR)
    say = Narrator(sys.stderr if as_json else sys.stdout)
    started = time.time()
    if trace:
        from livekit_ext.testing.traces import recording_spans

        with recording_spans() as exporter:
            outcome = asyncio.run(_live(provider, say) if live else _offline(provider, say))
        if outcome is not None:
            print_span_tree(say, exporter.get_finished_spans(), started)
    else:
        outcome = asyncio.run(_live(provider, say) if live else _offline(provider, say))
    if outcome is None:
        return 2
    say(closing_line(outcome["saved"], outcome["expected"]))
    if as_json:
        print(json.dumps(outcome), flush=True)
    if live:  # a live model may not call the tool in time: the run itself is what counts
        return 0
    return 0 if outcome["saved"] == outcome["expected"] else 1
