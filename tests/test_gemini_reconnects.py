"""Gemini: a run of server-side disconnects, no message between them, does not end the session.

Each connection completes its setup handshake, then the server closes it. Upstream resets its
retry budget only when a server message arrives, so ``max_retry + 1`` such disconnects end the
session; with the extension the session keeps reconnecting (with upstream's backoff) and the
utterance sent once the server behaves again is transcribed.
"""

from __future__ import annotations

import inspect
import os

import pytest
from livekit.agents import APIConnectOptions

import livekit_ext
from livekit_ext.testing import GeminiLiveServer
from livekit_ext.testing.gemini_server import input_transcription, turn_complete
from livekit_ext.testing.sessions import gemini_realtime_session

pytestmark = pytest.mark.wire
EXTENSION_DISABLED = os.environ.get("LIVEKIT_EXT_DISABLE") == "1"

MAX_RETRY = 2
DISCONNECTS = 6  # three times the budget
FAST_RETRIES = {"conn_options": APIConnectOptions(max_retry=MAX_RETRY, retry_interval=0.05)}


def _upstream_counts_silent_disconnects() -> bool:
    """Before 1.6 or so a failed receive restarts the connection without counting a retry."""
    from livekit.plugins.google.realtime.realtime_api import RealtimeSession

    return "_session_error" in inspect.unwrap(RealtimeSession._recv_task).__code__.co_names


async def _disconnect_after_each_setup(server: GeminiLiveServer, times: int) -> None:
    for n in range(1, times + 1):
        await server.wait_for_setup(n)
        await server.drop()


async def test_silent_disconnects_beyond_the_budget_do_not_end_the_session(
    gemini_live_server: GeminiLiveServer,
) -> None:
    if EXTENSION_DISABLED:
        import livekit.plugins.google  # noqa: F401  (the feature is decided on this import)

        if (state := livekit_ext.status()["gemini_reconnects"]).state != "native":
            pytest.skip(f"the extension's reconnect policy; upstream alone: {state}")
    server = gemini_live_server
    async with gemini_realtime_session(server, model_kwargs=FAST_RETRIES) as (_, rec):
        await _disconnect_after_each_setup(server, DISCONNECTS)
        await server.wait_for_setup(DISCONNECTS + 1)
        await server.send(input_transcription("back again"), turn_complete())
        finals = await rec.wait_for_finals(1)
    assert finals[-1].transcript.strip() == "back again"
    assert all(e.error.recoverable for e in rec.errors)
    assert livekit_ext.status()["gemini_reconnects"] in ("patched", "native")


async def test_without_the_extension_the_budget_ends_the_session(
    gemini_live_server: GeminiLiveServer,
) -> None:
    """The upstream behaviour the feature changes (and what it still does when reverted)."""
    if EXTENSION_DISABLED:
        pytest.skip("switches the extension")
    if not _upstream_counts_silent_disconnects():
        pytest.skip("this release restarts after a receive error without counting a retry")
    livekit_ext.revert()
    server = gemini_live_server
    try:
        async with gemini_realtime_session(server, model_kwargs=FAST_RETRIES) as (_, rec):
            await _disconnect_after_each_setup(server, MAX_RETRY + 1)
            await rec.wait_for(
                lambda: any(not e.error.recoverable for e in rec.errors), what="a fatal error"
            )
    finally:
        livekit_ext.apply()
    assert server.setups_completed == MAX_RETRY + 1
