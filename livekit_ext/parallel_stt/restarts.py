"""Parallel STT, kept alive: on releases that do not recreate a failed STT stream (before
1.6.6) a parallel STT of a live session is run again after a connection failure, as 1.6.6+
does; any other error ends it, as there."""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal, cast

from .. import _touchpoints as tp
from .._wrapping import ACTIVE, Patcher, when_active
from .state import FEATURE, enabled_state, is_realtime

logger = logging.getLogger("livekit_ext")

_AR = tp.RECOGNITION

_RESTART_BACKOFF = 0.5  # what 1.6+ waits before recreating a failed STT stream
RestartMode = Literal["native", "pipeline", "task", "none"]

NATIVE_RESTART = tp.read(
    "1.6.6+: upstream recreates a failed STT stream itself",
    f"{_AR}:_STT_RECONNECT_INTERVAL",
    optional=True,
)
PIPELINE_FACTORY = tp.wrap(
    "1.5.2-1.6.5: the STT pipeline's pump is created here",
    f"{_AR}:AudioRecognition.update_stt",
    f"{_AR}:AudioRecognition._update_stt",
    optional=True,
)
PIPELINE = tp.read("1.5.2-1.6.5: the STT pipeline", f"{_AR}:_STTPipeline", optional=True)
STT_PUMP = tp.wrap(
    "1.5.2-1.6.5: a failed STT pump is run again", f"{_AR}:_STTPipeline._stt_pump", optional=True
)
STT_TASK = tp.wrap(
    "1.4-1.5.1: a failed STT task is run again", f"{_AR}:AudioRecognition._stt_task", optional=True
)
CLOSING = tp.attr(
    "a closing session's STT is not restarted",
    f"{tp.SESSION}._closing",
    f"{tp.SESSION}._closing_task",
    optional=True,
)


def install(patcher: Patcher) -> None:
    mode = restart_mode()
    if mode == "pipeline":
        patcher.wrap(PIPELINE_FACTORY, _update_stt)
        patcher.wrap(STT_PUMP, _stt_pump)
    elif mode == "task":
        patcher.wrap(STT_TASK, _stt_task)


def restart_mode() -> RestartMode:
    if NATIVE_RESTART.resolvable(importing=True):
        return "native"
    if PIPELINE.resolvable(importing=True):
        return "pipeline" if STT_PUMP.resolvable() and PIPELINE_FACTORY.resolvable() else "none"
    return "task" if STT_TASK.resolvable() else "none"


RESTART_REASONS: Mapping[RestartMode, str] = {
    "native": "upstream recreates a failed STT stream",
    "pipeline": "a failed STT pipeline is restarted",
    "task": "a failed STT task is restarted",
    "none": "a failed STT stays stopped (no restart point found)",
}


# module state: 1.5.x creates the STT pump's task inside update_stt; the task inherits the
# context, and nothing else of the call reaches it (the pipeline holds no session)
_PIPELINE_SESSION: contextvars.ContextVar[Any] = contextvars.ContextVar(
    "livekit_ext_parallel_stt_pipeline_session", default=None
)


def _restart_wanted(session: Any) -> bool:
    """Only a parallel STT of a live session is restarted; anything else fails as upstream's."""
    if FEATURE not in ACTIVE or session is None or enabled_state(session) is None:
        return False
    if getattr(session, "_closing", False) or getattr(session, "_closing_task", None):
        return False
    return is_realtime(getattr(session, "llm", None))


async def _restarting(run: Callable[[bool], Awaitable[Any]], session: Any) -> Any:
    """Run the STT again after a connection failure, like 1.6+ recreates its stream (other
    errors end it, as there)."""
    from livekit.agents import APIError

    restarted = False
    while True:
        try:
            return await run(restarted)
        except APIError as e:
            if not _restart_wanted(session):
                raise
            logger.warning(
                "livekit_ext: the parallel STT stream stopped on %r; restarting it in %ss",
                e,
                _RESTART_BACKOFF,
            )
        import asyncio  # livekit's own import; ``import livekit_ext`` alone stays cheap

        await asyncio.sleep(_RESTART_BACKOFF)
        if not _restart_wanted(session):
            return None
        restarted = True


@when_active(FEATURE)
def _stt_task(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
    """1.4.x: ``AudioRecognition._stt_task(stt_node, audio_input, previous_task)``."""

    def run(restarted: bool) -> Awaitable[Any]:
        if restarted and len(args) >= 3:
            args_now = (*args[:2], None, *args[3:])  # the task it waited for is long gone
            return cast(Awaitable[Any], wrapped(*args_now, **kwargs))
        return cast(Awaitable[Any], wrapped(*args, **kwargs))

    return _restarting(run, getattr(instance, "_session", None))


@when_active(FEATURE)
def _update_stt(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
    """1.5.x, early 1.6.x: the STT pipeline's pump is created in here; tell it whose session
    it serves."""
    token = _PIPELINE_SESSION.set(getattr(instance, "_session", None))
    try:
        return wrapped(*args, **kwargs)
    finally:
        _PIPELINE_SESSION.reset(token)


@when_active(FEATURE)
def _stt_pump(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
    """1.5.x: ``_STTPipeline._stt_pump()`` ends for good on a failure; run it again."""
    return _restarting(lambda _: wrapped(*args, **kwargs), _PIPELINE_SESSION.get())
