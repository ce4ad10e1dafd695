"""A text LLM that answers every turn with a fixed reply, for STT-pipeline sessions."""

from __future__ import annotations

from typing import Any

from livekit.agents import llm, utils
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, APIConnectOptions


class ScriptedLLM(llm.LLM):  # type: ignore[type-arg]  # generic from 1.8 only
    """Replies ``reply`` to every request; ``requests`` keeps each chat context it was sent."""

    def __init__(self, reply: str = "ok") -> None:
        super().__init__()
        self.reply = reply
        self.requests: list[llm.ChatContext] = []

    def chat(
        self,
        *,
        chat_ctx: llm.ChatContext,
        tools: list[Any] | None = None,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
        **_: Any,
    ) -> llm.LLMStream:
        self.requests.append(chat_ctx.copy())
        return _ReplyStream(self, chat_ctx=chat_ctx, tools=tools or [], conn_options=conn_options)


class _ReplyStream(llm.LLMStream):
    async def _run(self) -> None:
        assert isinstance(self._llm, ScriptedLLM)
        self._event_ch.send_nowait(
            llm.ChatChunk(
                id=utils.shortuuid("chunk_"),
                delta=llm.ChoiceDelta(role="assistant", content=self._llm.reply),
            )
        )
