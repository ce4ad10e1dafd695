"""PocketSphinxSTT, the demo's offline streaming STT, on the bundled phone-number recording.

Real decoding, no fakes: the WAV goes through ``stream()`` frame by frame and the transcript
must be the digits the clip's JSON says were spoken. Each test decodes ~5 s of audio in well
under a second (the paced one runs at 4x real time), so none is marked slow; every await on
the recogniser is bounded so a hang fails fast instead of stalling the suite.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np
import pytest

pytest.importorskip("pocketsphinx")

from livekit import rtc
from livekit.agents import stt

from livekit_ext.demo.audio import load_phone_number, load_wav_frames
from livekit_ext.demo.sphinx_stt import (
    PocketSphinxSTT,
    SphinxOptions,
    digits_from_words,
)

TIMEOUT = 10.0
E = stt.SpeechEventType


async def _collect(stream: stt.RecognizeStream) -> list[stt.SpeechEvent]:
    async def drain() -> list[stt.SpeechEvent]:
        return [ev async for ev in stream]

    try:
        return await asyncio.wait_for(drain(), TIMEOUT)
    finally:
        await stream.aclose()


async def _transcribe(
    frames: list[rtc.AudioFrame], *, speed: float | None = None
) -> list[stt.SpeechEvent]:
    """Push ``frames`` (as fast as possible, or paced at ``speed`` x real time), end, collect."""
    sphinx = PocketSphinxSTT()
    stream = sphinx.stream()

    async def feed() -> None:
        began, audio = time.monotonic(), 0.0
        for frame in frames:
            stream.push_frame(frame)
            audio += frame.duration
            if speed:  # on a fixed schedule, so sleep overshoot does not add up
                await asyncio.sleep(max(0.0, began + audio / speed - time.monotonic()))
        stream.end_input()

    feeder = asyncio.create_task(feed())
    try:
        return await _collect(stream)
    finally:
        await feeder
        await sphinx.aclose()


def _kinds(events: list[stt.SpeechEvent]) -> list[E]:
    return [ev.type for ev in events if ev.type != E.RECOGNITION_USAGE]


def _finals(events: list[stt.SpeechEvent]) -> list[stt.SpeechEvent]:
    return [ev for ev in events if ev.type == E.FINAL_TRANSCRIPT]


def _assert_phone_number(events: list[stt.SpeechEvent], meta: dict[str, Any]) -> None:
    kinds = _kinds(events)
    finals = _finals(events)
    assert [f.alternatives[0].text for f in finals] == [meta["digits"]], kinds
    assert kinds[0] == E.START_OF_SPEECH
    assert kinds.index(E.START_OF_SPEECH) < kinds.index(E.FINAL_TRANSCRIPT)
    assert kinds[-1] == E.END_OF_SPEECH
    assert kinds.count(E.START_OF_SPEECH) == kinds.count(E.END_OF_SPEECH) == 1


async def test_stream_transcribes_the_phone_number() -> None:
    frames, meta = load_phone_number()
    events = await _transcribe(frames)
    _assert_phone_number(events, meta)

    kinds = _kinds(events)
    interims = [ev for ev in events if ev.type == E.INTERIM_TRANSCRIPT]
    assert interims and kinds.index(E.INTERIM_TRANSCRIPT) < kinds.index(E.FINAL_TRANSCRIPT)
    assert all(ev.alternatives[0].text.isdigit() for ev in interims)
    assert len(interims) <= meta["duration"] / SphinxOptions().interim_interval + 1  # throttled

    final = _finals(events)[0]
    data = final.alternatives[0]
    # the recogniser's speech span lies close around the measured one (VAD hangover ~0.2 s)
    assert abs(data.start_time - meta["speech_start"]) < 0.3
    assert abs(data.end_time - meta["speech_end"]) < 0.4
    assert 0.0 < data.confidence <= 1.0
    assert data.words is not None and "".join(data.words) == meta["digits"]
    starts = [w.start_time for w in data.words]
    assert starts == sorted(starts)
    # one utterance, one id: every event of it carries the same request id
    assert len({ev.request_id for ev in events}) == 1 and final.request_id

    usage = [ev for ev in events if ev.type == E.RECOGNITION_USAGE]
    audio = sum(ev.recognition_usage.audio_duration for ev in usage if ev.recognition_usage)
    assert usage and audio == pytest.approx(meta["duration"], abs=0.05)


async def test_a_paced_stream_reports_wall_clock_speech_times() -> None:
    """Fed at 4x real time, the final's wall-clock speech times fall inside the run.

    (How long decoding may hold the event loop is a performance figure, not a test: timed
    assertions fail on a loaded machine.)
    """
    SPEED = 4.0  # x real time
    frames, meta = load_phone_number()
    started = time.time()
    events = await _transcribe(frames, speed=SPEED)
    _assert_phone_number(events, meta)

    # wall-clock speech times, where the release has the fields (start >= 1.5, end >= 1.7)
    final = _finals(events)[0]
    said_from: float | None = getattr(final, "speech_start_time", None)
    said_to: float | None = getattr(final, "speech_end_time", None)
    if said_from is not None:
        assert started <= said_from <= time.time()
    if said_to is not None:
        assert started <= said_to <= time.time()
    if said_from is not None and said_to is not None:
        spoken = final.alternatives[0].end_time - final.alternatives[0].start_time
        assert said_to - said_from == pytest.approx(spoken / SPEED, abs=0.1)


async def test_stream_resamples_and_downmixes_48k_stereo() -> None:
    frames, meta = load_phone_number()
    resampler = rtc.AudioResampler(16000, 48000, num_channels=1)
    upsampled = [f for frame in frames for f in resampler.push(frame)] + resampler.flush()
    stereo = []
    for f in upsampled:
        mono = np.frombuffer(f.data, dtype=np.int16)
        both = np.repeat(mono, 2)
        stereo.append(rtc.AudioFrame(both.tobytes(), 48000, 2, f.samples_per_channel))
    _assert_phone_number(await _transcribe(stereo), meta)


async def test_flush_ends_the_utterance_early() -> None:
    """A flush (the session committing a turn) finalises what has been heard so far."""
    frames, meta = load_phone_number()
    first_pair_end = meta["pairs"][0]["end"] + 0.1
    head = [f for i, f in enumerate(frames) if i * 0.02 < first_pair_end]
    sphinx = PocketSphinxSTT()
    stream = sphinx.stream()
    for frame in head:
        stream.push_frame(frame)
    stream.flush()
    for frame in frames[len(head) :]:
        stream.push_frame(frame)
    stream.end_input()
    events = await _collect(stream)
    await sphinx.aclose()
    texts = [f.alternatives[0].text for f in _finals(events)]
    assert texts[0] == meta["digits"][:2]
    assert "".join(texts) == meta["digits"]
    assert _kinds(events).count(E.START_OF_SPEECH) == len(texts)


async def test_recognize_a_buffer() -> None:
    frames, meta = load_phone_number()
    sphinx = PocketSphinxSTT()
    try:
        event = await asyncio.wait_for(sphinx.recognize(frames), TIMEOUT)
        silent = await asyncio.wait_for(sphinx.recognize(frames[:10]), TIMEOUT)
    finally:
        await sphinx.aclose()
    assert event.type == E.FINAL_TRANSCRIPT
    assert event.alternatives[0].text == meta["digits"]
    assert silent.alternatives[0].text == ""


def test_capabilities_and_text_format() -> None:
    caps = PocketSphinxSTT().capabilities
    assert caps.streaming and caps.interim_results
    assert getattr(caps, "manual_flush", False) is False
    assert digits_from_words(["four", "<sil>", "seven", "oh", "zero(2)", "[NOISE]"]) == "4700"


def test_load_wav_frames_cuts_20ms_frames() -> None:
    frames, meta = load_phone_number()
    assert {f.sample_rate for f in frames} == {16000} and {f.num_channels for f in frames} == {1}
    assert all(f.samples_per_channel == 320 for f in frames[:-1])
    assert sum(f.duration for f in frames) == pytest.approx(meta["duration"], abs=1e-3)
    from livekit_ext.demo.audio import PHONE_NUMBER_WAV

    assert len(load_wav_frames(PHONE_NUMBER_WAV, frame_ms=10)) == pytest.approx(
        2 * len(frames), abs=1
    )
