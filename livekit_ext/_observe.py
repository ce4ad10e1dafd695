"""See a session's events before its listeners do, on one instance only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._registry import hook_failed


def observe_before_listeners(emitter: Any, event: str, observer: Callable[[Any], None]) -> None:
    """Call ``observer`` with the payload of ``event`` before the emitter's listeners run.

    The instance's own ``emit`` is wrapped: older livekit-rtc keeps listeners in a set (no
    order at all), and the emitter runs ``inspect.signature`` on each listener at every
    emit, so a wrapper is both ordered and cheaper than one more listener. Other sessions
    pay nothing; this session pays one call per event it emits, so where our own wrapper
    already sees the event (the funnel), that is the place instead. An exception
    ``observer`` raises is logged, and the event goes on to the listeners.
    """
    emit = emitter.emit

    def emit_observed(name: Any, *args: Any) -> None:
        if name == event and args:
            try:
                observer(args[0])
            except Exception:
                hook_failed(f"observing {event}")
        emit(name, *args)

    emitter.emit = emit_observed
