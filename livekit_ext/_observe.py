"""See a session's events before its listeners do, on one instance only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._registry import hook_failed


def observe_before_listeners(
    emitter: Any,
    event: str,
    observer: Callable[[Any], None],
    *,
    types: tuple[str, ...] | None = None,
) -> None:
    """Call ``observer`` with the payload of ``event`` before the emitter's listeners run.

    The instance's own ``emit`` is wrapped: older livekit-rtc keeps listeners in a set (no
    order at all), and the emitter runs ``inspect.signature`` on each listener at every
    emit, so a wrapper is both ordered and cheaper than one more listener. Other sessions
    and other events pay nothing.

    ``types``: for raw server events (JSON objects), only those whose string ``"type"`` is
    one of these reach ``observer`` (any payload that is not a dict still does); the filter
    runs here because most raw events are audio the observer has no use for. A tuple:
    membership compares and never hashes, so an unhashable ``"type"`` is simply skipped.
    An exception ``observer`` raises is logged, and the event goes on to the listeners.
    """
    emit = emitter.emit

    if types is None:

        def emit_observed(name: Any, *args: Any) -> None:
            if name == event and args:
                try:
                    observer(args[0])
                except Exception:
                    hook_failed(f"observing {event}")
            emit(name, *args)

    else:

        def emit_observed(name: Any, *args: Any) -> None:
            if name == event and args:
                payload = args[0]
                try:
                    if type(payload) is not dict or (
                        type(kind := payload.get("type")) is str and kind in types
                    ):
                        observer(payload)
                except Exception:
                    hook_failed(f"observing {event}")
            emit(name, *args)

    emitter.emit = emit_observed
