"""No single server frame ends a session: every bad frame is logged once, then a valid
utterance sent after it is transcribed as usual. The real plugins over loopback sockets.

Each kind of bad frame goes to one session, followed each time by a valid utterance with its
own item id, so one test covers the whole list fast; a frame that ended the session fails the
test with that frame named.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
from typing import Any

import pytest

import livekit_ext
from livekit_ext.testing import GeminiLiveServer, LoopbackServer, OpenAIRealtimeServer
from livekit_ext.testing import gemini_server as gem
from livekit_ext.testing import openai_server as oai
from livekit_ext.testing.bad_frames import (
    GEMINI_ACCEPTED_BY_GENAI,
    GEMINI_BAD_FRAMES,
    OPENAI_BAD_BINARY_FRAMES,
    OPENAI_BAD_TEXT_FRAMES,
    OPENAI_KNOWN_TYPES_BROKEN_FRAMES,
)
from livekit_ext.testing.sessions import gemini_realtime_session, openai_realtime_session

pytestmark = pytest.mark.wire
EXTENSION_DISABLED = os.environ.get("LIVEKIT_EXT_DISABLE") == "1"

_UPSTREAM_HANDLER_LOG = "failed to handle event"  # upstream's own per-event try/except


def _frame_logs(caplog: pytest.LogCaptureFixture, since: int) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records[since:]
        if r.levelno >= logging.WARNING
        and (
            "dropped a" in r.getMessage()
            or "ignored a" in r.getMessage()
            or _UPSTREAM_HANDLER_LOG in r.getMessage()
        )
    ]


async def _send_frame(server: Any, frame: str | bytes) -> None:
    if isinstance(frame, bytes):
        await server.send_bytes(frame)
    else:
        await server.send_raw(frame)


async def _survived(rec: Any, n: int, frame: str | bytes) -> list[Any]:
    """The finals so far, once the utterance sent after ``frame`` is transcribed."""
    try:
        return await rec.wait_for_finals(n + 1, timeout=3.0)
    except AssertionError:
        pytest.fail(f"the session did not survive the frame {frame!r}: {rec.errors}")


def _skip_unless_upstream_guards_frames(
    feature: str = "malformed_frames", plugin: str = "livekit.plugins.openai"
) -> None:
    """With the extension disabled, run where upstream drops the frames itself (patches/)."""
    if EXTENSION_DISABLED:
        importlib.import_module(plugin)  # the feature is decided on this import

        state = livekit_ext.status()[feature]
        if state.state != "native":
            pytest.skip(f"the extension's frame guard; upstream alone: {state}")


def _fatal(errors: list[Any]) -> list[Any]:
    return [e for e in errors if not getattr(e.error, "recoverable", True)]


async def test_no_single_openai_frame_ends_the_session(
    openai_realtime_server: OpenAIRealtimeServer, caplog: pytest.LogCaptureFixture
) -> None:
    _skip_unless_upstream_guards_frames()
    server = openai_realtime_server
    frames: list[str | bytes] = [*OPENAI_BAD_TEXT_FRAMES, *OPENAI_BAD_BINARY_FRAMES]
    caplog.set_level(logging.WARNING)
    async with openai_realtime_session(server) as (_, rec):
        for n, frame in enumerate(frames):
            since = len(caplog.records)
            await _send_frame(server, frame)
            item = f"item_after_{n}"
            await server.send(
                oai.speech_started(item), oai.transcription_completed(item, f"still here {n}")
            )
            finals = await _survived(rec, n, frame)
            assert finals[-1].transcript == f"still here {n}", frame
            logged = _frame_logs(caplog, since)
            # a known type missing a field upstream does not need is handled, not dropped
            handled_as_is = frame in OPENAI_KNOWN_TYPES_BROKEN_FRAMES
            assert len(logged) == 1 or (handled_as_is and not logged), (frame, logged)
            if frame == '{"type": {"nested": true}}':  # the line says what was dropped, and why
                assert "string 'type'" in logged[0] and "nested" in logged[0]
        assert not _fatal(rec.errors)
        assert len(server.connections) == 1  # not even a reconnect


async def test_no_single_gemini_frame_ends_the_session(
    gemini_live_server: GeminiLiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    _skip_unless_upstream_guards_frames("gemini_malformed_frames", "livekit.plugins.google")
    server = gemini_live_server
    caplog.set_level(logging.WARNING)
    async with gemini_realtime_session(server) as (_, rec):
        for n, frame in enumerate(GEMINI_BAD_FRAMES):
            since = len(caplog.records)
            await server.send()  # waits for the setup of the newest connection
            await _send_frame(server, frame)
            await server.send(gem.input_transcription(f"still here {n}"), gem.turn_complete())
            finals = await _survived(rec, n, frame)
            assert finals[-1].transcript.strip() == f"still here {n}", frame
            logged = [m for m in _frame_logs(caplog, since) if "Gemini" in m]
            handled_as_is = frame in GEMINI_ACCEPTED_BY_GENAI  # nothing dropped, nothing said
            assert len(logged) == 1 or (handled_as_is and not logged), (frame, logged)
        assert not rec.errors
        assert server.setups_completed == 1  # no reconnect either


async def test_reverted_the_guard_lets_upstream_parse_again(
    openai_realtime_server: OpenAIRealtimeServer,
) -> None:
    """After revert() a session reads every frame as upstream does (no stand-in left over)."""
    if EXTENSION_DISABLED:
        pytest.skip("switches the extension")
    livekit_ext.revert()
    server = openai_realtime_server
    async with openai_realtime_session(server) as (_, rec):
        await server.send(oai.speech_started("item_A"), oai.transcription_completed("item_A", "hi"))
        await rec.wait_for_finals(1)
    livekit_ext.apply()
    assert rec.finals[-1].transcript == "hi"


async def test_no_single_frame_ends_a_gpt_live_connection(caplog: pytest.LogCaptureFixture) -> None:
    """1.8's GPT-Live engine reads its own websocket: the same frames, the same guard."""
    gpt_live = pytest.importorskip("livekit.agents.llm._realtime.gpt_live")
    _skip_unless_upstream_guards_frames()
    caplog.set_level(logging.WARNING)
    frames = [f for f in OPENAI_BAD_TEXT_FRAMES if f not in OPENAI_KNOWN_TYPES_BROKEN_FRAMES]
    frames.append('{"type": "session.output_audio.delta", "delta": 5}')
    async with LoopbackServer() as server:
        model = gpt_live.GPTLiveModel(api_key="test", base_url=f"http://127.0.0.1:{server.port}/v1")
        session = model.session()
        received: list[Any] = []
        errors: list[Any] = []
        session.on("openai_server_event_received", lambda ev: received.append(ev))
        session.on("error", lambda ev: errors.append(ev))
        try:
            await server.wait_for_connection()
            for n, frame in enumerate(frames):
                await server.send_raw(frame)
                await server.send_json({"type": "session.updated", "event_id": f"after_{n}"})
            await server.send_bytes(b"\x00\xff")
            await server.send_json({"type": "session.updated", "event_id": "last"})
            deadline = asyncio.get_running_loop().time() + 3.0
            while len(received) < len(frames) + 1 and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.01)
        finally:
            await session.aclose()
            await model.aclose()
    assert [e["event_id"] for e in received] == [f"after_{n}" for n in range(len(frames))] + [
        "last"
    ]
    assert not errors
    assert len(server.connections) == 1
    assert len(_frame_logs(caplog, 0)) == len(frames) + 1  # one line a bad frame
