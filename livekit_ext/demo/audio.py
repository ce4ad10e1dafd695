"""Recorded audio for the demo and the tests: the bundled WAV assets, cut into LiveKit frames."""

from __future__ import annotations

import json
import os
import wave
from pathlib import Path
from typing import Any

from livekit import rtc

ASSETS_DIR = Path(__file__).resolve().parent / "assets"
"""Shipped inside the wheel, so the demo works from an installed package."""

PHONE_NUMBER_WAV = ASSETS_DIR / "phone_number.wav"
"""A caller reading "four seven, nine one, two three, five eight" (16 kHz mono, 16-bit)."""

PHONE_NUMBER_JSON = ASSETS_DIR / "phone_number.json"
"""What ``PHONE_NUMBER_WAV`` says (``digits``) and where its speech is (``speech_start/end``)."""


def load_wav_frames(path: str | os.PathLike[str], frame_ms: int = 20) -> list[rtc.AudioFrame]:
    """Cut a 16-bit PCM WAV into ``frame_ms`` frames, as a microphone track would deliver them.

    The last frame keeps whatever is left (it is not padded), so the frames add up to exactly
    the file's duration; sample rate and channel count are the file's own.
    """
    if frame_ms <= 0:
        raise ValueError("frame_ms must be positive")
    with wave.open(os.fspath(path), "rb") as wav:
        if wav.getsampwidth() != 2:
            raise ValueError(f"{path}: only 16-bit PCM is supported, not {wav.getsampwidth() * 8}")
        sample_rate = wav.getframerate()
        channels = wav.getnchannels()
        pcm = wav.readframes(wav.getnframes())
    per_frame = max(1, sample_rate * frame_ms // 1000)
    step = per_frame * channels * 2
    frames: list[rtc.AudioFrame] = []
    for offset in range(0, len(pcm), step):
        chunk = pcm[offset : offset + step]
        frames.append(rtc.AudioFrame(chunk, sample_rate, channels, len(chunk) // (2 * channels)))
    return frames


def load_phone_number() -> tuple[list[rtc.AudioFrame], dict[str, Any]]:
    """The phone-number clip as 20 ms frames, with its metadata (digits, speech start/end)."""
    meta: dict[str, Any] = json.loads(PHONE_NUMBER_JSON.read_text())
    return load_wav_frames(PHONE_NUMBER_WAV), meta
