"""What one realtime session has said about user speech: the state behind its transcripts.

Speech starts and stops per item (bounded), the pushed-audio timeline that maps a provider's
audio offsets onto the wall clock, and the signals it publishes to the AgentSession it
serves. Kept on the realtime session (``REALTIME.of(rt_session)``); it dies with it.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Literal

from .._speech import SpeechSignals
from .._state import Attached, BoundedMap
from .._timeline import AudioTimeline

logger = logging.getLogger("livekit_ext")

_PENDING_START_MAX_AGE = 30.0  # seconds a speech start may wait for its item before it is stale


class RealtimeSpeech:
    """What one realtime session has told us about user speech, bounded."""

    def __init__(self) -> None:
        self.timeline = AudioTimeline()
        self.starts: BoundedMap[float] = BoundedMap()
        self.stops: BoundedMap[float] = BoundedMap()
        self.last_stopped_item: str | None = None
        self.connections = 0
        self._pending_provider_start: float | None = None
        self._pending_vad_start: float | None = None
        self.reserved_item: str | None = None
        """An item id chosen at the provider's speech start, for the item it will create."""
        self.provider: str | None = None
        """A provider-specific speech source seen on this session (``"openai"``, ``"gemini"``):
        it is better than the framework's generic speech events, which are then not used."""
        self.speaking_item: str | None = None
        """The item whose speech started last and has not stopped (provider-specific sources)."""
        self.heard_unnamed = False
        """Gemini: a user transcript came before any utterance was named; the generation it
        opens names the utterance, whose stop is then inferred."""
        self.inferred_item: str | None = None
        """Gemini: the utterance heard without ``voiceActivity``, not stopped yet: its stop is
        inferred from what the service does next."""
        self.transcribing_item: str | None = None
        """The item of the latest transcript since the framework's last speech start: what its
        speech stop (which names no item) stops, where no provider-specific source is seen."""
        self.speech_event: Any = None
        """The OpenAI speech event last handled (an override and the engine's handler it
        calls through ``super()`` see the same one: handled once)."""
        self.signals: SpeechSignals | None = None
        """The speech signals of the AgentSession this realtime session serves, once known."""

    def signal(
        self,
        kind: Literal["started", "stopped"],
        item_id: str | None,
        at: float,
        evidence: str | None = None,
    ) -> None:
        """Publish a speech start/stop to the owning session's subscribers (if it has one)."""
        if self.signals is not None:
            self.signals.publish(kind, item_id, at, self.provider or "realtime", evidence)

    def take_reserved_item(self) -> str | None:
        """The reserved id, once, unless its speech start has gone stale."""
        reserved, self.reserved_item = self.reserved_item, None
        started = self.starts.get(reserved) if reserved is not None else None
        if started is None or time.time() - started > _PENDING_START_MAX_AGE:
            return None
        return reserved

    def connected(self) -> None:
        """A (re)connection: the provider counts audio offsets from zero again."""
        if self.connections:
            self.timeline.reset()
        self.connections += 1

    def provider_speech(
        self,
        kind: Literal["started", "stopped"],
        item_id: str | None,
        *,
        arrival: float,
        audio_offset: float | None,
        publish: bool = True,
    ) -> float:
        """The provider said speech began or ended, for ``item_id`` (None: not named yet).

        A start is bound to its item (which keeps its first start), or kept for the next
        item; a stop is kept for matching a parallel STT by time. Unless ``publish`` is
        False, the session's subscribers are told. Returns the time bound: the arrival, or
        earlier where the audio offset maps onto the pushed audio.
        """
        at = arrival
        if audio_offset is not None and (mapped := self.timeline.wall_time_at(audio_offset)):
            at = min(mapped, arrival)
        item_id = item_id or None
        if kind == "started":
            self._pending_vad_start = None  # the provider's signal supersedes the local VAD's
            self._pending_provider_start = at if item_id is None else None
            times = self.starts
        else:
            self.last_stopped_item = item_id
            times = self.stops
        if item_id is not None:
            if kind == "started" and item_id in times:
                at = times[item_id]
            else:
                times[item_id] = at
        if publish:
            self.signal(kind, item_id, at)
        return at

    def vad_speech_started(self, started: float) -> None:
        self._pending_vad_start = started

    def bind_pending(self, item_id: str) -> None:
        """A new item appeared: it owns the speech start that was waiting for it."""
        if item_id in self.starts:
            return
        pending = self._take_pending()
        if pending is not None:
            self.starts[item_id] = pending

    def start_of(self, item_id: str, first_seen: float) -> float:
        if item_id not in self.starts:
            pending = self._take_pending()
            self.starts[item_id] = min(pending, first_seen) if pending is not None else first_seen
        return self.starts[item_id]

    def _take_pending(self) -> float | None:
        pending = self._pending_provider_start or self._pending_vad_start
        self._pending_provider_start = self._pending_vad_start = None
        if pending is not None and time.time() - pending > _PENDING_START_MAX_AGE:
            logger.debug(
                "livekit_ext: dropping a speech start older than %ss", _PENDING_START_MAX_AGE
            )
            return None
        return pending


REALTIME: Attached[RealtimeSpeech] = Attached("realtime_speech", RealtimeSpeech)


def of_activity(activity: Any) -> RealtimeSpeech | None:
    """The speech state of the activity's realtime session, if it has one."""
    rt_session = getattr(activity, "_rt_session", None)
    return None if rt_session is None else REALTIME.of(rt_session)
