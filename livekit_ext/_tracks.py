"""Per-session tracks: what livekit_ext knows of each session, kept in one place.

Every feature reads and writes the same tracks instead of keeping its own globals:

- ``realtime_track(rt_session)``: what one realtime session said about user speech (speech
  starts and stops per item, the pushed-audio timeline that maps provider offsets to wall time);
- ``session_track(agent_session)``: the STT pipeline's turns, the transcript log a function tool
  reads, and whether the session was started with the extension in effect.

All state is bounded and dies with its session (weak keys).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any
from weakref import WeakKeyDictionary

from ._timeline import AudioTimeline
from .transcripts import TranscriptLog

logger = logging.getLogger("livekit_ext")

_MAX_TRACKED_ITEMS = 512
_PENDING_START_MAX_AGE = 30.0  # seconds a speech start may wait for its item before it is stale


class _BoundedMap(OrderedDict[str, float]):
    """An insertion-ordered map that forgets its oldest entries past a fixed size."""

    def __init__(self, limit: int = _MAX_TRACKED_ITEMS) -> None:
        super().__init__()
        self._limit = limit

    def __setitem__(self, key: str, value: float) -> None:
        super().__setitem__(key, value)
        while len(self) > self._limit:
            self.popitem(last=False)


class RealtimeTrack:
    """What one realtime session has told us about user speech, bounded."""

    def __init__(self) -> None:
        self.timeline = AudioTimeline()
        self.starts = _BoundedMap()
        self.stops = _BoundedMap()
        self.last_stopped_item: str | None = None
        self.connections = 0
        self._pending_provider_start: float | None = None
        self._pending_vad_start: float | None = None
        self.reserved_item: str | None = None
        """An item id chosen at the provider's speech start, for the item it will create."""

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

    def provider_speech_started(
        self, item_id: str | None, *, arrival: float, audio_offset: float | None
    ) -> None:
        """The provider said speech began; bind it to ``item_id`` or keep it for the next item."""
        started = arrival
        if audio_offset is not None and (mapped := self.timeline.wall_time_at(audio_offset)):
            started = min(mapped, arrival)
        self._pending_vad_start = None  # the provider's signal supersedes the local VAD's
        if item_id:
            self.starts.setdefault(item_id, started)
            self._pending_provider_start = None
        else:
            self._pending_provider_start = started

    def vad_speech_started(self, started: float) -> None:
        self._pending_vad_start = started

    def provider_speech_stopped(
        self, item_id: str | None, *, arrival: float, audio_offset: float | None
    ) -> None:
        """The provider said speech ended: keep when, for matching a parallel STT by time."""
        self.last_stopped_item = item_id
        stopped = arrival
        if audio_offset is not None and (mapped := self.timeline.wall_time_at(audio_offset)):
            stopped = min(mapped, arrival)
        if item_id:
            self.stops[item_id] = stopped

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
        self.starts = _BoundedMap()
        self.current_turn: str | None = None
        self._pending_vad_start: float | None = None

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


_realtime_tracks: WeakKeyDictionary[Any, RealtimeTrack] = WeakKeyDictionary()
_session_tracks: WeakKeyDictionary[Any, SessionTrack] = WeakKeyDictionary()


def realtime_track(rt_session: Any) -> RealtimeTrack:
    track = _realtime_tracks.get(rt_session)
    if track is None:
        track = _realtime_tracks[rt_session] = RealtimeTrack()
    return track


def session_track(agent_session: Any) -> SessionTrack:
    track = _session_tracks.get(agent_session)
    if track is None:
        track = _session_tracks[agent_session] = SessionTrack()
    return track


def pipeline_track(agent_session: Any) -> PipelineTrack:
    return session_track(agent_session).pipeline


def new_item_id() -> str:
    """A fresh utterance id, shaped like the ids upstream gives chat items."""
    from livekit.agents import utils

    return str(utils.shortuuid("item_"))
