"""A session's speech starts and stops, as soon as something says so: a seam between features.

``transcript_identity`` publishes them (the provider's speech events, Gemini's voiceActivity,
an STT pipeline's START/END_OF_SPEECH or local VAD); ``Utterances`` and
``utterance_segments`` subscribe, per session: ``speech_of(session).subscribe(callback)``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

from ._state import Attached

logger = logging.getLogger("livekit_ext")


class SpeechSignal(NamedTuple):
    """The user started or stopped speaking in one session.

    Immutable; a tuple rather than a frozen dataclass, which costs more to build (one per
    speech start and stop)."""

    kind: Literal["started", "stopped"]
    item_id: str | None
    """The id the utterance's transcripts carry; None where the source does not know it yet."""
    at: float
    """Wall-clock time of the start or stop (the best known, like ``speech_started_at``)."""
    origin: str
    """What said so: ``"openai"``, ``"gemini"``, ``"realtime"`` (the framework's realtime
    session events), ``"stt"`` (an STT pipeline's START/END_OF_SPEECH or local VAD)."""


SpeechSubscriber = Callable[[SpeechSignal], None]


class SpeechSignals:
    """Publishes one session's speech starts and stops to its subscribers.

    Subscribers are held strongly by the session (this state lives on it): a subscriber that
    holds the session (``Utterances``) lives as long as the session does, and the two are
    freed together.
    """

    __slots__ = ("subscribers",)

    def __init__(self) -> None:
        self.subscribers: tuple[SpeechSubscriber, ...] = ()

    def subscribe(self, subscriber: SpeechSubscriber) -> Callable[[], None]:
        """Call ``subscriber`` with each signal from now on; returns the unsubscribe."""
        self.subscribers = (*self.subscribers, subscriber)

        def unsubscribe() -> None:
            self.subscribers = tuple(s for s in self.subscribers if s is not subscriber)

        return unsubscribe

    def publish(
        self, kind: Literal["started", "stopped"], item_id: str | None, at: float, origin: str
    ) -> None:
        """Tell every subscriber; one that raises is logged, the others still hear it."""
        if not self.subscribers:
            return
        signal = SpeechSignal(kind, item_id, at, origin)
        for subscriber in self.subscribers:
            try:
                subscriber(signal)
            except Exception:
                logger.exception("livekit_ext: a speech %s subscriber failed", kind)


SPEECH: Attached[SpeechSignals] = Attached("speech", SpeechSignals)


def speech_of(session: Any) -> SpeechSignals:
    """The speech signals of an ``AgentSession``."""
    return SPEECH.of(session)
