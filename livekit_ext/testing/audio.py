"""Audio for a session with no room: a microphone stand-in that paces frames like a real one."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Iterable

from livekit import rtc
from livekit.agents.voice import io


def silence(
    seconds: float, *, sample_rate: int = 24000, frame_ms: int = 20
) -> list[rtc.AudioFrame]:
    samples = sample_rate * frame_ms // 1000
    count = max(1, round(seconds * 1000 / frame_ms))
    return [rtc.AudioFrame(b"\0\0" * samples, sample_rate, 1, samples) for _ in range(count)]


class PacedAudioInput(io.AudioInput):
    """Feeds queued frames to the session at ``speed`` times real time, silence when idle.

    ``audio_time`` is how many seconds of audio have been delivered; ``wall_time_at(offset)``
    when the frame holding that offset was handed over, so tests can check that provider
    audio offsets are mapped back onto the wall clock.
    """

    def __init__(self, *, sample_rate: int = 24000, frame_ms: int = 20, speed: float = 1.0) -> None:
        super().__init__(label="livekit_ext.testing.PacedAudioInput")
        self.sample_rate = sample_rate
        self.frame_ms = frame_ms
        self.speed = speed
        self.audio_time = 0.0
        self._queue: deque[rtc.AudioFrame] = deque()
        self._started_at: float | None = None
        self._deliveries: list[tuple[float, float]] = []  # (audio offset, wall time)
        self._closed = False

    @property
    def started_at(self) -> float | None:
        """Wall time at which the session took the first frame (audio offset 0)."""
        return self._started_at

    def push(self, frames: Iterable[rtc.AudioFrame]) -> None:
        self._queue.extend(frames)

    def close(self) -> None:
        self._closed = True

    def wall_time_at(self, offset: float) -> float | None:
        """Wall time at which the frame holding audio ``offset`` was delivered (its start)."""
        for start, wall in reversed(self._deliveries):
            if start <= offset:
                return wall + (offset - start) / self.speed
        return None

    async def __anext__(self) -> rtc.AudioFrame:
        if self._closed:
            raise StopAsyncIteration
        frame = (
            self._queue.popleft()
            if self._queue
            else silence(
                self.frame_ms / 1000, sample_rate=self.sample_rate, frame_ms=self.frame_ms
            )[0]
        )
        now = time.time()
        if self._started_at is None:
            self._started_at = now
        due = self._started_at + self.audio_time / self.speed
        if due > now:
            await asyncio.sleep(due - now)
        # the frame is "captured" over [audio_time, audio_time + duration): record its start
        self._deliveries.append((self.audio_time, time.time() - frame.duration / self.speed))
        if len(self._deliveries) > 4096:
            del self._deliveries[:2048]
        self.audio_time += frame.duration
        return frame
