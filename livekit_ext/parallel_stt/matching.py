"""Parallel STT, the pure part: which utterance an STT transcript belongs to, by time.

The STT's own utterances are tracked from its START/END_OF_SPEECH (robust to a lagging STT),
and matched to the realtime model's utterances by overlap in wall-clock time. No livekit here.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import islice
from typing import Any

MAX_RECENT_ITEMS = 16  # realtime utterances considered when matching an STT one by time
_MAX_COMPLETED = 512
_MAX_QUEUED_UTTERANCES = 8
_MIN_LAG_ALLOWANCE = 1.5  # seconds an ended utterance may wait for its first transcript
_MAX_LAG_ALLOWANCE = 10.0


@dataclass
class SttUtterance:
    """One utterance as the parallel STT heard it, from START_OF_SPEECH to END_OF_SPEECH."""

    start: float
    end: float | None = None
    heard: bool = False  # a transcript was attributed to it
    fresh_id: str | None = None

    def interval(self, at: float) -> tuple[float, float]:
        """``[start, end]``; an utterance still open (or never ended) runs until ``at``."""
        return self.start, max(self.end if self.end is not None else at, self.start)


class SttUtterances:
    """Which utterance of the parallel STT a transcript belongs to, robust to a lagging STT.

    The STT's own START/END_OF_SPEECH arrive on time while its transcripts may trail by
    seconds, so utterances queue up until their final arrives; a transcript belongs to the
    oldest one waiting. An utterance ended long ago that never got a transcript was noise
    (a VAD-driven STT often recognises nothing) and is dropped. Without START/END events an
    utterance starts at its first transcript and ends at its final.
    """

    def __init__(self) -> None:
        self._queue: deque[SttUtterance] = deque()
        self.lag = 0.0  # how far the last final trailed its end of speech

    def __len__(self) -> int:
        return len(self._queue)

    def reset(self) -> None:
        """The STT failed: what it heard before will never be transcribed."""
        self._queue.clear()

    def speech_started(self, at: float) -> None:
        if self._queue and self._queue[-1].end is None:
            return  # still speaking: one utterance
        self._queue.append(SttUtterance(start=at))
        while len(self._queue) > _MAX_QUEUED_UTTERANCES:
            self._queue.popleft()

    def speech_ended(self, at: float) -> None:
        if self._queue and self._queue[-1].end is None:
            utterance = self._queue[-1]
            utterance.end = max(at, utterance.start)

    def current(self, at: float) -> SttUtterance:
        """The utterance a transcript arriving at ``at`` belongs to."""
        allowance = min(max(_MIN_LAG_ALLOWANCE, 2 * self.lag), _MAX_LAG_ALLOWANCE)
        queue = self._queue
        while len(queue) > 1 and not queue[0].heard and at - (queue[0].end or at) > allowance:
            queue.popleft()  # noise: ended long ago and nothing was ever recognised in it
        if not queue:
            queue.append(SttUtterance(start=at))
        queue[0].heard = True
        return queue[0]

    def finalized(self, utterance: SttUtterance, at: float) -> None:
        """A final closed ``utterance``; one still open continues where the final ended."""
        if utterance.end is not None:
            self.lag = max(0.0, at - utterance.end)
        if utterance.end is not None or len(self._queue) > 1:
            if self._queue and self._queue[0] is utterance:
                self._queue.popleft()
        else:
            utterance.start = max(utterance.start, at - self.lag)


class Completed(OrderedDict[str, float]):
    def note(self, item_id: str, at: float) -> None:
        self.setdefault(item_id, at)
        while len(self) > _MAX_COMPLETED:
            self.popitem(last=False)


def event_time(ev: Any) -> float:
    now = time.time()
    created = getattr(ev, "created_at", None)
    return min(created, now) if isinstance(created, (int, float)) and created > 0 else now


def provider_time(value: Any, ceiling: float) -> float | None:
    return min(float(value), ceiling) if isinstance(value, (int, float)) and value > 0 else None


def overlapping_item(
    starts: dict[str, float],
    stops: Mapping[str, float],
    completed: Completed,
    start: float,
    end: float,
) -> str | None:
    """The recent realtime utterance (by ``starts``, newest last) that overlaps
    ``[start, end]`` the most, if any."""
    best: str | None = None
    best_overlap = -math.inf
    later_start = math.inf
    for item_id, item_start in islice(reversed(starts.items()), MAX_RECENT_ITEMS):
        item_end = stops.get(item_id) or completed.get(item_id) or later_start
        later_start = min(later_start, item_start)
        if item_end < start:
            break  # newest first: every older utterance ended before this one
        if item_start > end:
            continue
        overlap = min(end, item_end) - max(start, item_start)
        if overlap > best_overlap:
            best, best_overlap = item_id, overlap
    return best
