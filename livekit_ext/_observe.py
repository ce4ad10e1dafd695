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


def upstream_has_speech_events() -> bool:
    """Whether the installed livekit-agents emits ``user_speech_started``/``_stopped`` on the
    session itself (patches/: the speech-signal patch), with the item id of the utterance."""
    import sys

    events = sys.modules.get("livekit.agents.voice.events")
    if events is None:
        try:
            from livekit.agents.voice import events
        except ImportError:
            return False
    return hasattr(events, "UserSpeechStartedEvent") and hasattr(events, "UserSpeechStoppedEvent")


def observe_upstream_speech(
    session: Any, on_speech: Callable[[Any], None]
) -> Callable[[], None] | None:
    """Where upstream emits the session's speech starts and stops itself, hand each to
    ``on_speech`` as a ``SpeechSignal``; returns the unsubscribe, or None where it does not."""
    if not upstream_has_speech_events() or not callable(getattr(session, "on", None)):
        return None
    from ._tracks import SpeechSignal

    def signal(kind: Any, item_id: Any, at: Any, source: Any) -> None:
        origin = "stt" if source == "stt" else "realtime"
        try:
            on_speech(SpeechSignal(kind=kind, item_id=item_id, at=at, origin=origin))
        except Exception:
            hook_failed(f"observing user_speech_{kind}")

    def started(ev: Any) -> None:
        signal("started", ev.item_id, ev.speech_started_at, ev.source)

    def stopped(ev: Any) -> None:
        signal("stopped", ev.item_id, ev.speech_stopped_at, ev.source)

    session.on("user_speech_started", started)
    session.on("user_speech_stopped", stopped)

    def unsubscribe() -> None:
        session.off("user_speech_started", started)
        session.off("user_speech_stopped", stopped)

    return unsubscribe
