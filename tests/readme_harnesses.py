"""Drivers for README snippets that only define functions (marker ``script, then: <name>``).

A snippet such as ``show_placeholders(session, room, frontend)`` runs without error whether or
not its callbacks would ever fire; that proves little. ``tests/test_readme.py`` appends
``readme_harnesses.drive("<name>", globals())`` to such a snippet, and the harness of that
name calls what the snippet defined with a real ``AgentSession`` over a loopback server (and
stand-ins for what needs a LiveKit room), drives an utterance, and fails unless the
snippet's callbacks fired with the right values. This file is copied next to the snippets
in the scratch project; it imports only the installed package and livekit.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from livekit.agents import AgentSession

from livekit_ext.testing import GeminiLiveServer, OpenAIRealtimeServer
from livekit_ext.testing import gemini_server as gemini
from livekit_ext.testing import openai_server as oai
from livekit_ext.testing.sessions import gemini_realtime_session, openai_realtime_session

Namespace = dict[str, Any]


UNPATCHED_UPSTREAM = {
    "show_placeholders": "the speech-start and speech-stop signals",
    "live_captions": "Gemini's interim transcripts",
}
"""Harnesses whose callbacks need what ``patches/`` does not carry yet (the check_patches
script's ``UNCOVERED_FEATURE_TESTS``): with the extension disabled over patched upstream, they
run the snippet and say what they did not check, instead of failing."""


def drive(name: str, namespace: Namespace) -> None:
    """Run the harness ``name`` against what the snippet defined in ``namespace``."""
    try:
        HARNESSES[name](namespace)
    except AssertionError as failed:
        if os.environ.get("LIVEKIT_EXT_DISABLE") != "1" or name not in UNPATCHED_UPSTREAM:
            raise
        reason = UNPATCHED_UPSTREAM[name]
        print(f"{name}: not checked with LIVEKIT_EXT_DISABLE=1 ({reason}: no patch yet): {failed}")


def _printed(run: Callable[[], Awaitable[None]]) -> list[str]:
    """The lines ``run`` printed; echoed, so the test can still match the snippet's output."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        asyncio.run(run())
    sys.stdout.write(out.getvalue())
    return out.getvalue().splitlines()


@contextlib.asynccontextmanager
async def _openai() -> AsyncIterator[tuple[OpenAIRealtimeServer, AgentSession, Any]]:
    async with (
        OpenAIRealtimeServer() as server,
        openai_realtime_session(server) as (session, rec),
    ):
        yield server, session, rec


async def _one_openai_utterance(server: OpenAIRealtimeServer, rec: Any, text: str) -> None:
    """Speech start, speech stop, the completed transcript of ``item_1``; its final heard."""
    await server.send(oai.speech_started("item_1"))
    await server.send(oai.speech_stopped("item_1"), oai.transcription_completed("item_1", text))
    await rec.wait_for_finals(1)


def track_utterances(ns: Namespace) -> None:
    """README's first screen: a placeholder at speech start, then the final, once each."""

    async def run() -> None:
        async with _openai() as (server, session, rec):
            utterances = ns["track_utterances"](session)
            await _one_openai_utterance(server, rec, "hello")
            await utterances.aclose()

    lines = _printed(run)
    assert lines == ["placeholder item_1", "item_1 hello"], lines


class RecordingParticipant:
    """A room's ``local_participant`` stand-in whose ``perform_rpc`` records each call."""

    def __init__(self) -> None:
        self.rpcs: list[tuple[str, str, dict[str, Any]]] = []

    async def perform_rpc(
        self,
        *,
        destination_identity: str,
        method: str,
        payload: str,
        response_timeout: float | None = None,
    ) -> str:
        self.rpcs.append((destination_identity, method, json.loads(payload)))
        return ""


class RecordingRoom:
    """Just enough of ``rtc.Room`` for code that sends RPCs to a frontend."""

    def __init__(self) -> None:
        self.local_participant = RecordingParticipant()


def show_placeholders(ns: Namespace) -> None:
    """One placeholder RPC at speech start, one at the stop, the text once it is final."""
    room = RecordingRoom()

    async def run() -> None:
        async with _openai() as (server, session, rec):
            utterances = ns["show_placeholders"](session, room, "frontend")
            await _one_openai_utterance(server, rec, "my number is four")
            await utterances.aclose()  # waits for the async callbacks still running

    asyncio.run(run())
    rpcs = room.local_participant.rpcs
    assert [(to, method, body["item_id"]) for to, method, body in rpcs] == [
        ("frontend", "placeholder", "item_1"),
        ("frontend", "listening", "item_1"),
        ("frontend", "transcript", "item_1"),
    ], rpcs
    started, stopped, final = (body for _, _, body in rpcs)
    assert isinstance(started["started_at"], float), started
    assert stopped["stopped_at"] >= started["started_at"], (started, stopped)
    assert final["text"] == "my number is four", final


def on_transcribed(ns: Namespace) -> None:
    """The typed handler, listening to a real session's ``user_input_transcribed``."""

    async def run() -> None:
        async with _openai() as (server, session, rec):
            session.on("user_input_transcribed", ns["on_transcribed"])
            await _one_openai_utterance(server, rec, "hello")

    lines = _printed(run)
    assert lines and set(lines) == {"item_1 realtime"}, lines


def live_captions(ns: Namespace) -> None:
    """Gemini's interim text while the user speaks reaches ``show_caption``, in order."""

    async def run() -> None:
        async with (
            GeminiLiveServer() as server,
            gemini_realtime_session(server) as (session, rec),
        ):
            utterances = ns["live_captions"](session)
            await server.send(gemini.voice_activity_start())
            await server.send(gemini.interim_input_transcription("what is"))
            await server.send(gemini.interim_input_transcription("what is the weather"))
            await server.send(gemini.input_transcription("What is the weather?"))
            await server.send(gemini.turn_complete())
            await rec.wait_for_finals(1)
            await utterances.aclose()

    lines = _printed(run)
    texts = [line.partition(" ")[2] for line in lines]
    assert texts[:2] == ["what is", "what is the weather"], lines
    assert all(line.startswith("GI_") for line in lines), lines  # one utterance's id


def phone_session(ns: Namespace) -> None:
    """The realtime model mishears, the STT next to it does not, and the tool reads the STT."""
    from livekit.plugins import openai

    from livekit_ext.testing.audio import PacedAudioInput
    from livekit_ext.testing.stt import Say, ScriptedSTT

    output: list[str] = []

    async def run() -> None:
        stt = ScriptedSTT([Say(0.1, "start"), Say(0.3, "final", "five eight"), Say(0.4, "end")])
        async with OpenAIRealtimeServer() as server:
            model = openai.realtime.RealtimeModel(base_url=server.base_url, api_key="test")
            session = ns["phone_session"](model, stt)
            mic = PacedAudioInput()
            session.input.audio = mic
            heard: list[Any] = []
            session.on("user_input_transcribed", lambda ev: heard.append(ev))
            await session.start(ns["PhoneAgent"]())
            try:
                await server.wait_for_client_event("session.update")
                await server.send(oai.speech_started("item_A", 100))
                await _until(lambda: any(ev.transcript == "five eight" for ev in heard))
                await server.send(
                    oai.speech_stopped("item_A", 450),
                    oai.transcription_completed("item_A", "five three"),
                )
                await server.send(
                    *oai.function_call("resp_1", "item_call", "call_1", "save_phone_number")
                )
                sent = await server.wait_for_client_event(
                    lambda e: (e.get("item") or {}).get("type") == "function_call_output"
                )
                output.append(sent["item"]["output"])
                # the model answers the tool's output, or the session's close waits for it
                request = await server.wait_for_client_event("response.create")
                metadata = (request.get("response") or {}).get("metadata")
                await server.send(
                    *oai.assistant_reply("resp_2", "item_R", "Saved.", metadata=metadata)
                )
            finally:
                mic.close()
                await session.aclose()
                await model.aclose()

    asyncio.run(run())
    assert output == ["saved five eight"], output


async def _until(ready: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, f"timed out after {timeout}s"
        await asyncio.sleep(0.01)


HARNESSES: dict[str, Callable[[Namespace], None]] = {
    "track_utterances": track_utterances,
    "show_placeholders": show_placeholders,
    "on_transcribed": on_transcribed,
    "live_captions": live_captions,
    "phone_session": phone_session,
}
