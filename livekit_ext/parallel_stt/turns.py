"""Parallel STT, committed turns: a turn the audio recognition commits from the STT's words
(session close, a manual commit) must not become a user message next to a transcribing
realtime model, which makes the user's messages itself."""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import _touchpoints as tp
from .._wrapping import ACTIVE, Patcher, hook_errors_logged, install_when_needed, when_active
from .state import FEATURE, parallel_state, transcribes

logger = logging.getLogger("livekit_ext")

END_OF_TURN = tp.wrap("a turn committed from the STT's words", f"{tp.ACTIVITY}.on_end_of_turn")
CONVERSATION_ITEM_ADDED = tp.wrap(
    "keep the STT's committed words out of the chat context (wrapped at the first such turn)",
    f"{tp.SESSION}._conversation_item_added",
)
ACTIVITY_AGENT = tp.attr(
    "the agent whose chat context holds the user messages", f"{tp.ACTIVITY}._agent"
)
CHAT_CONTEXT = tp.attr(
    "the chat context an STT-committed user message is taken back out of",
    "livekit.agents.voice.agent:Agent._chat_ctx",
)


def install(patcher: Patcher) -> None:
    patcher.wrap(END_OF_TURN, _end_of_turn)


@dataclass(frozen=True)
class _SttTurn:
    """A user turn the audio recognition committed from the parallel STT's words."""

    activity: Any
    transcript: str


# module state: the user message of a committed turn is added from a task on_end_of_turn
# starts; the task inherits the context, and the message carries nothing of the turn
_STT_TURN: contextvars.ContextVar[_SttTurn | None] = contextvars.ContextVar(
    "livekit_ext_parallel_stt_turn", default=None
)


@when_active(FEATURE)
def _end_of_turn(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
    """A turn the audio recognition commits (session close, manual commit) carries the STT's
    words; a transcribing realtime model makes the user's messages, so they must not become
    one. A model that does not transcribe leaves them to the STT, as it does without us."""
    turn = None
    with hook_errors_logged("reading a turn committed next to a realtime model"):
        info = args[0] if args else kwargs.get("info")
        transcript = getattr(info, "new_transcript", None)
        if transcript and parallel_state(instance) is not None and transcribes(instance):
            turn = _SttTurn(instance, transcript)
    if turn is None:
        return wrapped(*args, **kwargs)
    # installed with the first such turn: sessions without a parallel STT pay nothing per item
    install_when_needed(FEATURE, CONVERSATION_ITEM_ADDED, _conversation_item_added)
    token = _STT_TURN.set(turn)  # the tasks it starts inherit it
    try:
        return wrapped(*args, **kwargs)
    finally:
        _STT_TURN.reset(token)


def _conversation_item_added(original: Callable[..., Any]) -> Callable[..., Any]:
    def _conversation_item_added(self: Any, *args: Any, **kwargs: Any) -> Any:
        """Within such a turn, its user message is withdrawn; everything else goes through."""
        turn = _STT_TURN.get()
        if turn is not None and FEATURE in ACTIVE:
            message = args[0] if args else kwargs.get("message")
            withdrawn = False
            with hook_errors_logged("keeping a parallel STT transcript out of the chat context"):
                withdrawn = _withdraw(turn, message)
            if withdrawn:
                return None
        return original(self, *args, **kwargs)

    return _conversation_item_added


def _withdraw(turn: _SttTurn, message: Any) -> bool:
    """Take the turn's user message back out of the agent's chat context; True if it was."""
    if getattr(message, "role", None) != "user" or message.text_content != turn.transcript:
        return False
    items = turn.activity._agent._chat_ctx.items
    for index in range(len(items) - 1, -1, -1):
        if items[index] is message:
            del items[index]
            break
    logger.debug(
        "livekit_ext: the parallel STT's transcript of a committed turn is not added as a user "
        "message; the realtime model's own transcript is"
    )
    return True
