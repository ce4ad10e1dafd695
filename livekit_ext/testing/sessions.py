"""Start a real AgentSession (no room) against a loopback server, and close it after."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from livekit.agents import Agent, AgentSession, function_tool

from .openai_server import OpenAIRealtimeServer
from .recorder import SessionRecorder


class ScenarioAgent(Agent):
    """The agent scenarios run: one function tool, so tool-call turns have something to call."""

    def __init__(self) -> None:
        super().__init__(instructions="You are a test agent.")
        self.lookups: list[str] = []

    @function_tool
    async def lookup(self, query: str) -> str:
        """Look something up.

        Args:
            query: what to look up
        """
        self.lookups.append(query)
        return f"result for {query}"


@asynccontextmanager
async def running_session(
    session: AgentSession[Any], agent: Agent | None = None, *, audio: Any = None
) -> AsyncIterator[SessionRecorder]:
    """Start ``session`` (optionally fed by ``audio``), yield its recorder, always close it."""
    if audio is not None:
        session.input.audio = audio
    recorder = SessionRecorder(session)
    await session.start(agent or ScenarioAgent())
    try:
        yield recorder
    finally:
        if audio is not None and hasattr(audio, "close"):
            audio.close()
        await session.aclose()


@asynccontextmanager
async def openai_realtime_session(
    server: OpenAIRealtimeServer,
    *,
    audio: Any = None,
    model_kwargs: dict[str, Any] | None = None,
    **session_kwargs: Any,
) -> AsyncIterator[tuple[AgentSession[Any], SessionRecorder]]:
    """An AgentSession whose llm is the real OpenAI realtime plugin pointed at ``server``.

    Yields once the plugin's first ``session.update`` reached the server.
    """
    from livekit.plugins import openai

    model = openai.realtime.RealtimeModel(
        base_url=server.base_url, api_key="test", **(model_kwargs or {})
    )
    session: AgentSession[Any] = AgentSession(llm=model, **session_kwargs)
    connected_before = len(server.connections)
    try:
        async with running_session(session, audio=audio) as recorder:
            conn = await server.wait_for_connection(connected_before + 1)
            await server.wait_until(
                lambda: any(e.get("type") == "session.update" for e in conn.client_events)
            )
            yield session, recorder
    finally:
        await model.aclose()  # the model owns an HTTP session the AgentSession does not close


@asynccontextmanager
async def gemini_realtime_session(
    server: Any,
    *,
    audio: Any = None,
    model_kwargs: dict[str, Any] | None = None,
    **session_kwargs: Any,
) -> AsyncIterator[tuple[AgentSession[Any], SessionRecorder]]:
    """An AgentSession whose llm is the real Gemini Live plugin pointed at ``server``
    (a :class:`~livekit_ext.testing.gemini_server.GeminiLiveServer`); yields once set up."""
    session: AgentSession[Any] = AgentSession(
        llm=server.realtime_model(**(model_kwargs or {})), **session_kwargs
    )
    connected_before = len(server.connections)
    async with running_session(session, audio=audio) as recorder:
        await server.wait_for_setup(connected_before + 1)
        yield session, recorder
