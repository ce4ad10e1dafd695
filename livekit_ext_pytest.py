"""pytest fixtures for the ``livekit_ext.testing`` loopback servers (the ``pytest11`` entry point).

A top-level module, not part of ``livekit_ext``: pytest imports every registered plugin in
every run of the environment, and importing anything under ``livekit_ext`` applies its patches
to livekit-agents. So nothing of ``livekit_ext`` is imported here until a test asks for one of
these fixtures; a run that uses neither sees stock livekit-agents, as if the package were not
installed.

The fixtures are pytest-asyncio fixtures. Under pytest-asyncio's default strict mode, mark the
test ``@pytest.mark.asyncio``; with ``asyncio_mode = "auto"`` no marker is needed. A user's
project needs ``livekit-ext[pytest]`` (pytest, pytest-asyncio) and the extra of the plugin it
tests (``[openai]``, ``[google]``), not the package's own ``[test]`` extra.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import pytest

try:
    import pytest_asyncio
except ImportError:  # the fixtures then say what to install instead of failing every run
    pytest_asyncio = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from livekit_ext.testing import GeminiLiveServer, OpenAIRealtimeServer


def _async_fixture(fixture: Callable[[], AsyncIterator[Any]]) -> Any:
    if pytest_asyncio is not None:
        return pytest_asyncio.fixture(fixture)

    @pytest.fixture(name=fixture.__name__)
    def needs_pytest_asyncio() -> None:
        pytest.fail(f'{fixture.__name__} needs pytest-asyncio: pip install "livekit-ext[pytest]"')

    return needs_pytest_asyncio


@_async_fixture
async def openai_realtime_server() -> AsyncIterator[OpenAIRealtimeServer]:
    """A fresh OpenAI Realtime loopback server on 127.0.0.1 for one test."""
    from livekit_ext.testing import OpenAIRealtimeServer

    async with OpenAIRealtimeServer() as server:
        yield server


@_async_fixture
async def gemini_live_server() -> AsyncIterator[GeminiLiveServer]:
    """A fresh Gemini Live loopback server (TLS, self-signed for 127.0.0.1) for one test."""
    from livekit_ext.testing import GeminiLiveServer

    async with GeminiLiveServer() as server:
        yield server
