"""Map a provider's audio offset ("speech began 1840 ms into the stream") onto the wall clock.

Providers report speech start as an offset into the audio the client has sent since the
connection opened. The client knows when it pushed each frame, so it can tell when the
sample at that offset was captured: a frame pushed at wall time T covering offsets
[s, s+d) holds the sample at offset o (s <= o < s+d) captured at T - d + (o - s).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

_MAX_SEGMENTS = 64
_CONTIGUITY_TOLERANCE = 0.05  # a gap longer than 50 ms starts a new run


@dataclass
class _Segment:
    offset: float  # seconds of audio sent before this run began
    wall: float  # wall time at which the first sample of the run was captured
    duration: float


class AudioTimeline:
    """Bounded record of when the session's audio was pushed, per connection."""

    def __init__(self) -> None:
        self._segments: deque[_Segment] = deque(maxlen=_MAX_SEGMENTS)
        self._sent = 0.0

    def reset(self) -> None:
        """A new provider connection counts its offsets from zero again."""
        self._segments.clear()
        self._sent = 0.0

    def pushed(self, duration: float, *, now: float | None = None) -> None:
        if duration <= 0:
            return
        pushed_at = time.time() if now is None else now
        captured_at = pushed_at - duration
        last = self._segments[-1] if self._segments else None
        # a frame that arrives early (buffered audio fed faster than real time) continues the
        # run; only a gap (no audio pushed for a while) starts a new one
        if last is not None and captured_at - (last.wall + last.duration) <= _CONTIGUITY_TOLERANCE:
            last.duration += duration
        else:
            self._segments.append(_Segment(offset=self._sent, wall=captured_at, duration=duration))
        self._sent += duration

    def wall_time_at(self, offset: float) -> float | None:
        """Wall time at which the sample ``offset`` seconds into the stream was captured."""
        if not self._segments or offset < 0:
            return None
        for segment in reversed(self._segments):
            if segment.offset <= offset:
                return segment.wall + (offset - segment.offset)
        return None  # older than what the bounded record still holds


def parse_duration(value: object) -> float | None:
    """Seconds from a protobuf-JSON duration (``"1.5s"``), a number, or None."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if text.endswith("s"):
            text = text[:-1]
        try:
            return float(text)
        except ValueError:
            return None
    return None
