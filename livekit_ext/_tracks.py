"""Per-session tracks: what livekit_ext knows of each session, kept in one place.

Every feature reads and writes the same tracks instead of keeping its own globals:

- ``realtime_track(rt_session)``: what one realtime session said about user speech (speech
  starts and stops per item, the pushed-audio timeline that maps provider offsets to wall time);
- ``session_track(agent_session)``: the STT pipeline's turns, the transcript log a function tool
  reads, whether the session was started with the extension in effect, and ``speech``: the
  session's speech starts and stops as they happen, for subscribers such as ``Utterances``.

All state is bounded and dies with its session (weak keys).
"""

from __future__ import annotations

import logging
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, NamedTuple, TypeVar

from ._timeline import AudioTimeline
from .transcripts import TranscriptLog

logger = logging.getLogger("livekit_ext")

T = TypeVar("T")
V = TypeVar("V")

_MAX_TRACKED_ITEMS = 512
_set_ordered = OrderedDict.__setitem__
_PENDING_START_MAX_AGE = 30.0  # seconds a speech start may wait for its item before it is stale


class _BoundedMap(OrderedDict[str, V]):
    """An insertion-ordered map that forgets its oldest entries past a fixed size."""

    def __init__(self, limit: int = _MAX_TRACKED_ITEMS) -> None:
        super().__init__()
        self._limit = limit

    def __setitem__(self, key: str, value: V) -> None:
        _set_ordered(self, key, value)  # not super(): this runs per speech start and stop
        if len(self) > self._limit:  # one entry in, at most one out
            self.popitem(last=False)


class SpeechSignal(NamedTuple):
    """The user started or stopped speaking in one session, as soon as something said so.

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
    None for a signal the provider or the framework sent as such."""


SpeechSubscriber = Callable[[SpeechSignal], None]
_new_signal = tuple.__new__
"""``_new_signal(SpeechSignal, fields)``: what ``SpeechSignal._make`` does, without its call."""


class SpeechSignals:
    """Publishes one session's speech starts and stops to its subscribers.

    Subscribers are held strongly by the session's track, which lives on the session: a
    subscriber that holds the session (``Utterances``) lives as long as the session does, and
    the two are freed together.
    """

    def __init__(self) -> None:
        self.subscribers: tuple[SpeechSubscriber, ...] = ()

    def subscribe(self, subscriber: SpeechSubscriber) -> Callable[[], None]:
        """Call ``subscriber`` with each signal from now on; returns the unsubscribe."""
        self.subscribers = (*self.subscribers, subscriber)

        def unsubscribe() -> None:
            self.subscribers = tuple(s for s in self.subscribers if s is not subscriber)

        return unsubscribe

    def publish(self, signal: SpeechSignal) -> None:
        for subscriber in self.subscribers:
            try:
                subscriber(signal)
            except Exception:
                logger.exception("livekit_ext: a speech %s subscriber failed", signal.kind)


class RealtimeTrack:
    """What one realtime session has told us about user speech, bounded."""

    def __init__(self) -> None:
        self.timeline = AudioTimeline()
        self.starts: _BoundedMap[float] = _BoundedMap()
        self.stops: _BoundedMap[float] = _BoundedMap()
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
        self.interims: _BoundedMap[str] = _BoundedMap()
        """Gemini: the interim text so far per item (opt-in interim transcripts)."""
        self.interims_closed: _BoundedMap[float] = _BoundedMap()
        """Gemini: items whose final text arrived; their later interims are stale."""

    def signal(
        self,
        kind: Literal["started", "stopped"],
        item_id: str | None,
        at: float,
        evidence: str | None = None,
    ) -> None:
        """Publish a speech start/stop to the owning session's subscribers (if it has one)."""
        if self.signals is not None and (subscribers := self.signals.subscribers):
            # SpeechSignals.publish, inline: this runs per speech start and stop
            signal = _new_signal(
                SpeechSignal, (kind, item_id, at, self.provider or "realtime", evidence)
            )
            for subscriber in subscribers:
                try:
                    subscriber(signal)
                except Exception:
                    logger.exception("livekit_ext: a speech %s subscriber failed", kind)

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


class PipelineTrack:
    """The STT pipeline's user turns: one id per turn, shared with the committed ChatMessage."""

    def __init__(self) -> None:
        self.starts: _BoundedMap[float] = _BoundedMap()
        self.current_turn: str | None = None
        self._pending_vad_start: float | None = None
        self._turn_heard = False
        """The current turn has had a transcript (a turn opened at a start of speech has not)."""

    def speech_started(self, started: float) -> str:
        """Speech began (the STT's START_OF_SPEECH or the local VAD): the turn's id, now.

        A turn opened here that gets no transcript (noise) is taken over by the next start of
        speech, with the later start, exactly as a pending start is today.
        """
        if self.current_turn is None:
            self.current_turn = new_item_id()
            self._turn_heard = False
            self._pending_vad_start = None
            self.starts[self.current_turn] = started
        elif not self._turn_heard:
            self.starts[self.current_turn] = started
        else:
            self.starts.setdefault(self.current_turn, started)
        return self.current_turn

    def vad_speech_started(self, started: float) -> None:
        if self.current_turn is None:
            self._pending_vad_start = started
        else:
            self.starts.setdefault(self.current_turn, started)

    def turn_id(self) -> str:
        if self.current_turn is None:
            self.current_turn = new_item_id()
            if self._pending_vad_start is not None:
                self.starts[self.current_turn] = self._pending_vad_start
                self._pending_vad_start = None
        self._turn_heard = True
        return self.current_turn

    def end_turn(self) -> str | None:
        turn, self.current_turn = self.current_turn, None
        return turn

    def start_of(self, item_id: str, first_seen: float) -> float:
        return self.starts.setdefault(item_id, first_seen)


@dataclass
class SessionTrack:
    """One AgentSession: its STT pipeline turns, its transcript log, how it was started."""

    pipeline: PipelineTrack = field(default_factory=PipelineTrack)
    log: TranscriptLog = field(default_factory=TranscriptLog)
    log_recorded_at_funnel: bool = True
    """False when the log observes the session itself (the funnel is not ours to record at)."""
    started_patched: bool = False
    """``session.start()`` ran while transcript identity was in effect."""
    warned_unpatched: bool = False
    speech: SpeechSignals = field(default_factory=SpeechSignals)
    """The session's speech starts and stops, published as they happen."""
    stampers: tuple[Callable[[Any], None], ...] = ()
    """Called with each user transcript at the funnel before it is enriched (``Funnel``)."""
    observers: tuple[Callable[[Any], None], ...] = ()
    """Called with each user transcript at the funnel once enriched (``Funnel``)."""
    origin: Any = None
    """Where the user transcripts now reaching the funnel were born (a
    ``transcript_identity.Origin``), set around the upstream handler that emits them:
    upstream calls the funnel synchronously from it, in every release. Kept per session, not
    in a ContextVar: the tasks and timers the handler starts copy the context, and would keep
    an origin alive and hand it to whatever they emit later."""


class TrackMap(Generic[T]):
    """Tracks of the upstream objects they describe, each kept on its object; it dies with it.

    The track is an attribute of the object (``attr``), not the value of a weakly keyed map:
    a lookup is one attribute read (they run several times per upstream event), and what a
    track holds may hold its object in turn (a subscriber such as ``Utterances`` holds its
    session) without keeping it alive: that is a cycle the collector frees, where a
    weakly keyed map's value holding its key would never be freed.
    """

    def __init__(self, new: Callable[[], T], attr: str) -> None:
        self._new = new
        self.attr = attr
        self._owners: weakref.WeakSet[Any] = weakref.WeakSet()

    def create(self, owner: Any) -> T:
        track = self._new()
        setattr(owner, self.attr, track)
        self._owners.add(owner)
        return track

    def get(self, owner: Any) -> T | None:
        return getattr(owner, self.attr, None)

    def owners(self) -> list[Any]:
        """The live objects that have a track."""
        return list(self._owners)

    def __len__(self) -> int:
        return len(self._owners)


REALTIME_TRACK = "_livekit_ext_realtime_track"
"""The attribute holding a realtime session's track (read inline by the per-event hooks)."""
SESSION_TRACK = "_livekit_ext_session_track"
"""The attribute holding an AgentSession's track (read inline by the per-event hooks)."""
realtime_tracks: TrackMap[RealtimeTrack] = TrackMap(RealtimeTrack, REALTIME_TRACK)
session_tracks: TrackMap[SessionTrack] = TrackMap(SessionTrack, SESSION_TRACK)


def realtime_track(rt_session: Any) -> RealtimeTrack:
    track: RealtimeTrack | None = getattr(rt_session, REALTIME_TRACK, None)
    return track if track is not None else realtime_tracks.create(rt_session)


def session_track(agent_session: Any) -> SessionTrack:
    track: SessionTrack | None = getattr(agent_session, SESSION_TRACK, None)
    return track if track is not None else session_tracks.create(agent_session)


def pipeline_track(agent_session: Any) -> PipelineTrack:
    return session_track(agent_session).pipeline


def new_item_id() -> str:
    """A fresh utterance id, shaped like the ids upstream gives chat items."""
    from livekit.agents import utils

    return str(utils.shortuuid("item_"))
