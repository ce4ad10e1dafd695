"""pytest fixtures for regression tests against the loopback provider servers.

Registered through the ``pytest11`` entry point, so ``pip install livekit-ext`` makes
``openai_realtime_server`` and ``gemini_live_server`` available in any test suite.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from .gemini_server import GeminiLiveServer
from .openai_server import OpenAIRealtimeServer


@pytest_asyncio.fixture
async def openai_realtime_server() -> AsyncIterator[OpenAIRealtimeServer]:
    """A fresh OpenAI Realtime loopback server on 127.0.0.1 for one test."""
    async with OpenAIRealtimeServer() as server:
        yield server


@pytest_asyncio.fixture
async def gemini_live_server() -> AsyncIterator[GeminiLiveServer]:
    """A fresh Gemini Live loopback server (TLS, self-signed for 127.0.0.1) for one test."""
    async with GeminiLiveServer() as server:
        yield server
