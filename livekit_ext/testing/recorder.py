"""Collect what an AgentSession emits, and wait for it without fixed sleeps."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any


class SessionRecorder:
    """Records ``user_input_transcribed`` and ``conversation_item_added`` of one session."""

    def __init__(self, session: Any) -> None:
        self.transcripts: list[Any] = []
        self.items: list[Any] = []
        self.errors: list[Any] = []
        # Python functions, not bound builtins like ``list.append``: livekit's emitter calls
        # inspect.signature on each listener per event, which parses a builtin's text
        # signature every time (~0.2 ms), and that would dwarf what the benchmarks measure
        session.on("user_input_transcribed", lambda ev: self.transcripts.append(ev))
        session.on("conversation_item_added", lambda ev: self.items.append(ev.item))
        session.on("error", lambda ev: self.errors.append(ev))

    def watch_utterances(self, session: Any) -> None:
        """Also record ``livekit_ext.Utterances(session)``: ``(event name, Utterance)``."""
        from ..utterances import Utterances

        self.utterance_view = Utterances(session)
        self.utterances: list[tuple[str, Any]] = []
        for name in (
            "utterance_started",
            "utterance_updated",
            "utterance_stopped",
            "utterance_final",
        ):
            self.utterance_view.on(name, lambda u, n=name: self.utterances.append((n, u)))

    @property
    def finals(self) -> list[Any]:
        return [e for e in self.transcripts if e.is_final]

    def messages(self, role: str) -> list[Any]:
        return [i for i in self.items if getattr(i, "role", None) == role]

    async def wait_for(
        self, ready: Callable[[], bool], *, timeout: float = 5.0, what: str = "condition"
    ) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            await asyncio.sleep(0.01)

    async def wait_for_finals(self, count: int, *, timeout: float = 5.0) -> list[Any]:
        await self.wait_for(
            lambda: len(self.finals) >= count, timeout=timeout, what=f"{count} finals"
        )
        return self.finals
