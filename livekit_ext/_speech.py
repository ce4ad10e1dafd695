"""A session's speech starts and stops, as soon as something says so: a seam between features.

``transcript_identity`` publishes them (the provider's speech events, Gemini's voiceActivity,
an STT pipeline's START/END_OF_SPEECH or local VAD); ``Utterances`` and
``utterance_segments`` subscribe, per session: ``speech_of(session).subscribe(callback)``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, Literal, NamedTuple, get_args

from . import _funnel
from . import _touchpoints as tp
from ._state import Attached
from ._wrapping import hook_failed

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
    evidence: str | None = None
    """A stop inferred where the provider sends none (Gemini without ``voiceActivity``): what
    it was inferred from, ``"generation"`` (the model began answering) or ``"turn_complete"``;
    from upstream's ``user_speech_stopped`` (patches/), its ``speech_stopped_by``; None for a
    signal the provider or the framework sent as such."""


SpeechSubscriber = Callable[[SpeechSignal], None]
StopEvidence = Literal["provider", "framework", "stt", "generation", "turn_complete", "final"]
_STOP_BY_ORIGIN: Mapping[str, StopEvidence] = {
    "openai": "provider",
    "gemini": "provider",
    "realtime": "framework",
    "stt": "stt",
}


_EVIDENCE: Mapping[str, StopEvidence] = {e: e for e in get_args(StopEvidence)}


def stop_evidence(signal: SpeechSignal) -> StopEvidence:
    """What a stop signal's time comes from (``Utterance.speech_stopped_by``)."""
    if signal.evidence is not None and (named := _EVIDENCE.get(signal.evidence)) is not None:
        return named
    return _STOP_BY_ORIGIN.get(signal.origin, "framework")


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
        self,
        kind: Literal["started", "stopped"],
        item_id: str | None,
        at: float,
        origin: str,
        evidence: str | None = None,
    ) -> None:
        """Tell every subscriber; one that raises is logged, the others still hear it."""
        if not self.subscribers:
            return
        signal = SpeechSignal(kind, item_id, at, origin, evidence)
        for subscriber in self.subscribers:
            try:
                subscriber(signal)
            except Exception:
                logger.exception("livekit_ext: a speech %s subscriber failed", kind)


SPEECH: Attached[SpeechSignals] = Attached("speech", SpeechSignals)

UPSTREAM_SPEECH_EVENTS = tp.read(
    "the patch series: the session emits user_speech_started/stopped itself, with the item id",
    "livekit.agents.voice.events:UserSpeechStartedEvent",
    "livekit.agents.voice.events:UserSpeechStoppedEvent",
    optional=True,
)


def speech_of(session: Any) -> SpeechSignals:
    """The speech signals of an ``AgentSession``."""
    return SPEECH.of(session)


def upstream_has_speech_events() -> bool:
    """Whether the installed livekit-agents emits ``user_speech_started``/``_stopped`` on the
    session itself (patches/: the speech-signal patch), with the item id of the utterance."""
    found = list(UPSTREAM_SPEECH_EVENTS.owners(importing=True))
    return bool(found) and all(
        hasattr(found[0], path.rpartition(":")[2]) for path in UPSTREAM_SPEECH_EVENTS.paths
    )


def upstream_says_what_stopped() -> bool:
    """Whether upstream's ``user_speech_stopped`` says what the stop comes from
    (``speech_stopped_by``; patches/: the Gemini stop patch, which also infers Gemini's stop
    without ``voiceActivity``)."""
    if not upstream_has_speech_events():
        return False
    from livekit.agents.voice import events

    stopped = getattr(events, "UserSpeechStoppedEvent", None)  # the series' (patches/ 0005)
    return "speech_stopped_by" in getattr(stopped, "model_fields", {})


def observe_upstream_speech(session: Any, on_speech: SpeechSubscriber) -> Callable[[], None] | None:
    """Where upstream emits the session's speech starts and stops itself, hand each to
    ``on_speech`` as a ``SpeechSignal``; returns the unsubscribe, or None where it does not."""
    if not upstream_has_speech_events() or not callable(getattr(session, "on", None)):
        return None

    def signal(
        kind: Literal["started", "stopped"], item_id: Any, at: Any, source: Any, by: Any = None
    ) -> None:
        origin = "stt" if source == "stt" else "realtime"
        try:
            on_speech(SpeechSignal(kind, item_id, at, origin, by))
        except Exception:
            hook_failed(f"observing user_speech_{kind}")

    def started(ev: Any) -> None:
        signal("started", ev.item_id, ev.speech_started_at, ev.source)

    def stopped(ev: Any) -> None:
        # what says it stopped, where the release names it (the Gemini stop patch)
        by = getattr(ev, "speech_stopped_by", None)
        signal("stopped", ev.item_id, ev.speech_stopped_at, ev.source, by)

    session.on("user_speech_started", started)
    session.on("user_speech_stopped", stopped)

    def unsubscribe() -> None:
        session.off("user_speech_started", started)
        session.off("user_speech_stopped", stopped)

    return unsubscribe


def follow(
    session: Any, on_transcribed: Callable[[Any], None], on_speech: SpeechSubscriber
) -> Callable[[], None]:
    """Observe a session's transcripts and speech signals (a per-utterance view does);
    returns the detach.

    Transcripts are observed at the funnel where they pass it (one call per transcript), else
    at the session's ``emit``; speech signals come from the extension, or from upstream where
    the release emits them itself. Either way the session keeps the observers, so a view
    nobody holds lives as long as its session.
    """
    stop_transcripts = _funnel.observe(session, on_transcribed)
    stop_speech = speech_of(session).subscribe(on_speech)
    stop_upstream_speech = observe_upstream_speech(session, on_speech)

    def detach() -> None:
        stop_transcripts()
        stop_speech()
        if stop_upstream_speech is not None:
            stop_upstream_speech()

    return detach
