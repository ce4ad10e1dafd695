"""An offline, streaming digits recogniser for the demo: PocketSphinx with a JSGF digits grammar.

The demo runs it in parallel with a realtime model, so it has to behave like a real streaming
STT plugin (start of speech, throttled interims, a final, end of speech, usage) while needing
no network and no downloaded model: the ``pocketsphinx`` wheel ships its US English model.

Transcripts are the recognised digits with no separators, e.g. ``"47912358"`` for "four seven,
nine one, two three, five eight" ("oh" and "zero" both give ``0``). Pauses between digit groups
are the caller's, not part of the number, so they are not kept in the text; each digit's timing
is in ``SpeechData.words``.

How it works, per stream: a WebRTC-style VAD (``pocketsphinx.Vad``) cuts the audio into
utterances. Each utterance is decoded live for interims, then decoded again once it has ended
with the cepstral mean of the whole utterance: a first utterance decoded live starts from a
generic mean and often gains a spurious digit, the second pass does not. All decoding runs in a
worker thread, in slices short enough (<= 0.25 s of audio per call) that the event loop is never
blocked for long: pocketsphinx's C extension keeps the GIL while it decodes, so a thread alone
would not be enough.

One class serves every supported livekit-agents release: the constructor and abstract-method
signatures of ``stt.STT`` and ``stt.RecognizeStream`` are the same from 1.4.6 to 1.8.9, and the
fields that later releases added (``STTCapabilities.manual_flush``,
``SpeechEvent.speech_start_time`` / ``speech_end_time``, ``RecognizeStream.start_time``) are
used only where the installed release has them (probed, not read off the version).
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from livekit import rtc
from livekit.agents import stt
from livekit.agents.types import (
    DEFAULT_API_CONNECT_OPTIONS,
    NOT_GIVEN,
    APIConnectOptions,
    NotGivenOr,
    TimedString,
)

from .._extras import require

SAMPLE_RATE = 16000
"""The bundled acoustic model is 16 kHz; every input is resampled to it."""

DIGIT_WORDS: Mapping[str, str] = {
    "zero": "0",
    "oh": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
}
"""Spoken word -> digit. Both "zero" and "oh" are said for 0 in phone numbers."""

DIGITS_JSGF = """#JSGF V1.0;
grammar digits;
public <digits> = <digit>+;
<digit> = zero | oh | one | two | three | four | five | six | seven | eight | nine;
"""
"""Any non-empty run of digit words: the recogniser can only ever answer with digits."""

_SLICE_BYTES = SAMPLE_RATE // 4 * 2
"""Audio per decoder call in the final pass (0.25 s): bounds how long one call holds the GIL."""

_T = TypeVar("_T")


def digits_from_words(words: Iterable[str]) -> str:
    """``["four", "seven", "<sil>", "oh"]`` -> ``"470"``: digit words only, fillers dropped."""
    out = []
    for word in words:
        digit = DIGIT_WORDS.get(word.split("(", 1)[0].lower())  # "zero(2)": alternate pron.
        if digit is not None:
            out.append(digit)
    return "".join(out)


# -- feature probes (what the installed livekit-agents has, not which version it is) -------

_CAPABILITY_FIELDS = frozenset(f.name for f in dataclasses.fields(stt.STTCapabilities))
_EVENT_FIELDS = frozenset(f.name for f in dataclasses.fields(stt.SpeechEvent))
_STREAM_HAS_START_TIME = isinstance(
    inspect.getattr_static(stt.RecognizeStream, "start_time", None), property
)


def _known(names: frozenset[str], values: Mapping[str, Any]) -> dict[str, Any]:
    """Only the keyword arguments the installed dataclass or signature accepts."""
    return {k: v for k, v in values.items() if k in names}


# -- the synchronous engine, confined to one worker thread at a time ------------------------


@dataclass(frozen=True)
class SphinxOptions:
    """Tuning for the decoder and the utterance segmentation; the defaults suit phone numbers."""

    silprob: float = 0.05
    """Decoder silence probability. Higher than PocketSphinx's default (0.005) because callers
    pause between digit groups; with the default, pauses tend to come out as extra digits."""
    vad_mode: int = 0
    """``pocketsphinx.Vad`` aggressiveness, 0 (loose) to 3 (strict)."""
    start_window: float = 0.3
    """Seconds of audio the VAD looks at to decide that speech has started..."""
    min_speech: float = 0.15
    """...and how much of that window must be voiced."""
    preroll: float = 0.2
    """Audio kept from before the start window and decoded too: the decoder wants some silence
    before the first word."""
    end_silence: float = 0.6
    """Trailing silence that ends an utterance. Longer than the pauses between digit groups, so
    one phone number is one final."""
    max_utterance: float = 30.0
    """An utterance is cut here even if the caller keeps talking (bounds memory and latency)."""
    interim_interval: float = 0.3
    """At most one interim per this much audio, and only when the hypothesis changed."""
    silence_gate: float | None = -60.0
    """dBFS below which a 10 ms slice of input becomes digital silence (None: off). The model
    hears an extra "eight" in pauses that are almost but not quite silent, which is what a
    resampled synthetic or muted track carries: without the gate, 18/40 synthetic test numbers
    that went through a 48 kHz round trip came out right, with it 40/40. Real microphones
    are noisier than -60 dBFS, so their audio passes untouched."""
    refit_passes: int = 2
    """Decodes of an ended utterance, each starting from the cepstral mean the previous one
    measured. On synthetic test calls the live pass alone got 37/60 numbers right, one refit
    53/60, two 59/60; each costs ~0.02 s of CPU per second of speech."""
    decoder_config: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """Extra ``pocketsphinx.Decoder`` keyword arguments (``hmm``, ``beam``, ...)."""


@dataclass(frozen=True)
class _Started:
    at: float


@dataclass(frozen=True)
class _Interim:
    text: str
    start: float
    at: float


@dataclass(frozen=True)
class _Word:
    text: str
    start: float
    end: float
    confidence: float


@dataclass(frozen=True)
class _Final:
    """One ended utterance; ``text`` may be empty (speech that held no digit)."""

    text: str
    start: float
    end: float
    confidence: float
    words: tuple[_Word, ...]


_Output = _Started | _Interim | _Final


_dictionary_lock = threading.Lock()
_dictionary: list[tuple[str, str]] | None = None


def _digit_pronunciations() -> list[tuple[str, str]]:
    """The model's own CMUdict entries for the digit words (alternates included).

    Loading only these instead of the whole 130k-word dictionary makes a decoder ready in
    ~15 ms instead of ~150 ms, time during which the GIL is held.
    """
    global _dictionary
    with _dictionary_lock:
        if _dictionary is None:
            from pocketsphinx import get_model_path

            entries = []
            with open(get_model_path("en-us/cmudict-en-us.dict"), encoding="utf-8") as f:
                for line in f:
                    word, _, phones = line.strip().partition(" ")
                    if word.split("(", 1)[0] in DIGIT_WORDS:
                        entries.append((word, phones.strip()))
            missing = set(DIGIT_WORDS) - {w.split("(", 1)[0] for w, _ in entries}
            if missing:
                raise RuntimeError(f"pocketsphinx dictionary lacks {sorted(missing)}")
            _dictionary = entries
        return _dictionary


def _new_decoder(opts: SphinxOptions) -> Any:
    """A decoder with the digits grammar active (blocking; call it from a worker thread)."""
    from pocketsphinx import Decoder

    config: dict[str, Any] = {
        "lm": None,
        "dict": None,
        "samprate": SAMPLE_RATE,
        "silprob": opts.silprob,
        # the lattice pass both costs ~0.2 s with the GIL held (on seg()) and, on the test
        # calls, got fewer numbers right than the grammar search's own backtrace
        "bestpath": False,
        "loglevel": "FATAL",
        **opts.decoder_config,
    }
    decoder = Decoder(**config)
    for word, phones in _digit_pronunciations():
        decoder.add_word(word, phones, False)
    decoder.add_jsgf_string("digits", DIGITS_JSGF)
    decoder.activate_search("digits")
    return decoder


class _Recogniser:
    """VAD segmentation plus two-pass decoding of a 16 kHz mono PCM stream.

    Not thread-safe: a stream calls it from one worker thread at a time, in order.
    """

    def __init__(self, decoder: Any, opts: SphinxOptions) -> None:
        from pocketsphinx import Vad

        self.decoder = decoder
        self._opts = opts
        self._vad = Vad(opts.vad_mode, SAMPLE_RATE, 0.03)
        self._frame_bytes: int = self._vad.frame_bytes
        self._frame_s = self._frame_bytes / 2 / SAMPLE_RATE
        self._frate = 100  # feature frames per second (the model's -frate)
        self._window = max(1, round(opts.start_window / self._frame_s))
        self._needed = max(1, min(self._window, round(opts.min_speech / self._frame_s)))
        self._history: deque[tuple[bytes, bool]] = deque(
            maxlen=self._window + round(opts.preroll / self._frame_s)
        )
        gate = opts.silence_gate
        self._gate_rms = 0.0 if gate is None else 32768.0 * 10 ** (gate / 20)
        self._pending = bytearray()
        self.position = 0.0
        """Seconds of audio consumed so far."""
        self._speaking = False
        self._utterance = bytearray()
        self._utt_origin = 0.0  # audio time of the first byte in self._utterance
        self._speech_start = 0.0
        self._last_voiced = 0.0
        self._next_interim = 0.0
        self._last_interim = ""

    @property
    def speaking(self) -> bool:
        """Inside an utterance (the decoder has one open)."""
        return self._speaking

    def feed(self, pcm: bytes) -> list[_Output]:
        """Consume audio; return what happened in it."""
        self._pending += self._gate(pcm)
        out: list[_Output] = []
        fb = self._frame_bytes
        while len(self._pending) >= fb:
            frame = bytes(self._pending[:fb])
            del self._pending[:fb]
            self.position += self._frame_s
            voiced = bool(self._vad.is_speech(frame))
            if not self._speaking:
                self._history.append((frame, voiced))
                window = list(self._history)[-self._window :]
                if sum(v for _, v in window) >= self._needed:
                    out.append(self._begin())
                continue
            self._decode_live(frame)
            if voiced:
                self._last_voiced = self.position
            if (
                self.position - self._last_voiced >= self._opts.end_silence
                or self.position - self._speech_start >= self._opts.max_utterance
            ):
                out.append(self._end())
            elif self.position >= self._next_interim:
                interim = self._interim()
                if interim is not None:
                    out.append(interim)
        return out

    def _gate(self, pcm: bytes) -> bytes:
        if self._gate_rms <= 0 or not pcm:
            return pcm
        samples = np.frombuffer(pcm, dtype=np.int16).copy()
        whole = samples.shape[0] - samples.shape[0] % 160
        slices = samples[:whole].reshape(-1, 160)  # a view: zeroing it edits ``samples``
        power = (slices.astype(np.float32) ** 2).mean(axis=1)
        slices[power < self._gate_rms**2] = 0
        return bytes(samples.tobytes())

    def finish(self) -> list[_Output]:
        """End the current utterance now (flush, end of input)."""
        if not self._speaking:
            self._pending.clear()
            return []
        if self._pending:
            self.position += len(self._pending) / 2 / SAMPLE_RATE
            self._decode_live(bytes(self._pending))
            self._pending.clear()
        return [self._end()]

    def _begin(self) -> _Started:
        frames = list(self._history)
        self._history.clear()
        self._utt_origin = self.position - len(frames) * self._frame_s
        first_window = len(frames) - min(self._window, len(frames))
        first_voiced = next(i for i in range(first_window, len(frames)) if frames[i][1])
        self._speech_start = self._utt_origin + first_voiced * self._frame_s
        self._last_voiced = self.position
        self._next_interim = self.position + self._opts.interim_interval
        self._last_interim = ""
        self._speaking = True
        self._utterance.clear()
        self.decoder.start_utt()
        self._decode_live(b"".join(frame for frame, _ in frames))
        return _Started(self._speech_start)

    def _decode_live(self, pcm: bytes) -> None:
        self._utterance += pcm
        self.decoder.process_raw(pcm, False, False)

    def _interim(self) -> _Interim | None:
        self._next_interim = self.position + self._opts.interim_interval
        hyp = self.decoder.hyp()
        text = digits_from_words(hyp.hypstr.split()) if hyp is not None else ""
        if not text or text == self._last_interim:
            return None
        self._last_interim = text
        return _Interim(text, self._speech_start, self.position)

    def _end(self) -> _Final:
        """Close the live pass, then decode the utterance again with its own cepstral mean."""
        decoder = self.decoder
        decoder.end_utt()
        words = self._words()
        pcm = bytes(self._utterance)
        for _ in range(self._opts.refit_passes):
            decoder.set_cmn(decoder.get_cmn(True))  # the mean of the utterance just decoded
            decoder.start_utt()
            for offset in range(0, len(pcm), _SLICE_BYTES):
                decoder.process_raw(pcm[offset : offset + _SLICE_BYTES], False, False)
            decoder.end_utt()
            words = self._words() or words
        self._speaking = False
        self._utterance.clear()
        end = min(self._last_voiced, self.position)
        text = "".join(w.text for w in words)
        confidence = sum(w.confidence for w in words) / len(words) if words else 0.0
        return _Final(text, self._speech_start, end, confidence, tuple(words))

    def _words(self) -> list[_Word]:
        words = []
        for seg in self.decoder.seg() or ():  # None when nothing was recognised
            digit = digits_from_words([seg.word])
            if digit:
                words.append(
                    _Word(
                        digit,
                        self._utt_origin + seg.start_frame / self._frate,
                        self._utt_origin + (seg.end_frame + 1) / self._frate,
                        min(1.0, max(0.0, float(seg.prob))),
                    )
                )
        return words


class _DecoderPool:
    """Idle decoders kept for the next stream: a warm decoder also has a speaker-fitted mean."""

    def __init__(self, opts: SphinxOptions, keep: int = 2) -> None:
        self._opts = opts
        self._keep = keep
        self._idle: list[Any] = []
        self._lock = threading.Lock()

    def acquire(self) -> Any:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return _new_decoder(self._opts)

    def release(self, decoder: Any) -> None:
        with self._lock:
            if len(self._idle) < self._keep:
                self._idle.append(decoder)


# -- the livekit-agents side ----------------------------------------------------------------


def _to_mono_pcm16k(frames: Iterable[rtc.AudioFrame], resampler: _Resampler) -> bytes:
    return b"".join(resampler.push(frame) for frame in frames)


class _Resampler:
    """Down-mixes to mono and resamples to 16 kHz, keeping state across frames."""

    def __init__(self) -> None:
        self._rate = 0
        self._resampler: rtc.AudioResampler | None = None

    def push(self, frame: rtc.AudioFrame) -> bytes:
        if frame.num_channels > 1:
            samples = np.frombuffer(frame.data, dtype=np.int16).reshape(-1, frame.num_channels)
            mono = samples.mean(axis=1).astype(np.int16).tobytes()
            frame = rtc.AudioFrame(mono, frame.sample_rate, 1, frame.samples_per_channel)
        if frame.sample_rate == SAMPLE_RATE:
            return bytes(frame.data)
        if self._resampler is None or self._rate != frame.sample_rate:
            self._rate = frame.sample_rate
            self._resampler = rtc.AudioResampler(
                frame.sample_rate,
                SAMPLE_RATE,
                num_channels=1,
                quality=rtc.AudioResamplerQuality.HIGH,
            )
        return b"".join(bytes(f.data) for f in self._resampler.push(frame))

    def flush(self) -> bytes:
        if self._resampler is None:
            return b""
        return b"".join(bytes(f.data) for f in self._resampler.flush())


class PocketSphinxSTT(stt.STT):  # type: ignore[type-arg]  # generic in some releases only
    """Offline streaming digits STT (see the module docstring for the text format).

    ``stream()`` gives START_OF_SPEECH, INTERIM_TRANSCRIPT, FINAL_TRANSCRIPT, END_OF_SPEECH and
    RECOGNITION_USAGE events; ``recognize()`` decodes a buffer in one go. ``language`` only
    labels the results: the bundled model is US English.
    """

    def __init__(
        self,
        *,
        language: str = "en-US",
        options: SphinxOptions | None = None,
        manual_flush: bool = False,
        max_workers: int = 2,
    ) -> None:
        require("PocketSphinxSTT", "demo", "pocketsphinx")
        capabilities = stt.STTCapabilities(
            streaming=True,
            interim_results=True,
            **_known(_CAPABILITY_FIELDS, {"manual_flush": manual_flush, "offline_recognize": True}),
        )
        super().__init__(capabilities=capabilities)
        self._language = language
        self._opts = options or SphinxOptions()
        self._pool = _DecoderPool(self._opts)
        self._max_workers = max_workers
        self._executor: ThreadPoolExecutor | None = None
        self._streams: set[PocketSphinxStream] = set()

    @property
    def model(self) -> str:
        return "pocketsphinx-en-us-digits"

    @property
    def provider(self) -> str:
        return "pocketsphinx"

    @property
    def options(self) -> SphinxOptions:
        return self._opts

    def _submit(self, fn: Callable[..., _T], *args: Any) -> Future[_T]:
        """Run blocking decoder work on this STT's worker threads."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=self._max_workers, thread_name_prefix="pocketsphinx"
            )
        return self._executor.submit(fn, *args)

    def prewarm(self) -> None:
        """Build one decoder ahead of the first stream (in the background; returns at once)."""
        self._submit(lambda: self._pool.release(self._pool.acquire()))

    def stream(
        self,
        *,
        language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
    ) -> PocketSphinxStream:
        stream = PocketSphinxStream(
            stt=self,
            language=language if isinstance(language, str) else self._language,
            conn_options=conn_options,
        )
        self._streams.add(stream)
        return stream

    async def _recognize_impl(
        self,
        buffer: Any,
        *,
        language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
    ) -> stt.SpeechEvent:
        frames = [buffer] if isinstance(buffer, rtc.AudioFrame) else list(buffer)
        resampler = _Resampler()
        pcm = _to_mono_pcm16k(frames, resampler) + resampler.flush()
        finals = await asyncio.wrap_future(self._submit(self._recognize_sync, pcm))
        lang = language if isinstance(language, str) else self._language
        spoken = [f for f in finals if f.text]
        if not spoken:
            data = stt.SpeechData(language=lang, text="")  # type: ignore[arg-type]
        else:
            data = _speech_data(
                lang,
                "".join(f.text for f in spoken),
                spoken[0].start,
                spoken[-1].end,
                tuple(w for f in spoken for w in f.words),
                offset=0.0,
            )
        return stt.SpeechEvent(
            type=stt.SpeechEventType.FINAL_TRANSCRIPT,
            request_id=_request_id(),
            alternatives=[data],
        )

    def _recognize_sync(self, pcm: bytes) -> list[_Final]:
        decoder = self._pool.acquire()
        try:
            recogniser = _Recogniser(decoder, self._opts)
            outputs = recogniser.feed(pcm) + recogniser.finish()
            return [o for o in outputs if isinstance(o, _Final)]
        finally:
            self._pool.release(decoder)

    async def aclose(self) -> None:
        for stream in list(self._streams):
            await stream.aclose()
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None


def _request_id() -> str:
    return f"sphinx_{uuid.uuid4().hex[:12]}"


def _speech_data(
    language: str,
    text: str,
    start: float,
    end: float,
    words: tuple[_Word, ...],
    *,
    offset: float,
    confidence: float | None = None,
) -> stt.SpeechData:
    if confidence is None:
        confidence = sum(w.confidence for w in words) / len(words) if words else 0.0
    return stt.SpeechData(
        language=language,  # type: ignore[arg-type]  # a LanguageCode (str) in later releases
        text=text,
        start_time=offset + start,
        end_time=offset + end,
        confidence=confidence,
        words=[
            TimedString(
                w.text,
                start_time=offset + w.start,
                end_time=offset + w.end,
                confidence=w.confidence,
                start_time_offset=offset,
            )
            for w in words
        ],
    )


class PocketSphinxStream(stt.RecognizeStream):
    """Feeds pushed frames to a worker-thread recogniser and turns its output into events."""

    def __init__(
        self,
        *,
        stt: PocketSphinxSTT,
        language: str,
        conn_options: APIConnectOptions,
    ) -> None:
        # resampling (and down-mixing, which upstream does not do) happens here, so the base
        # class is not asked for a sample_rate even where it accepts one
        super().__init__(stt=stt, conn_options=conn_options)
        self._sphinx = stt
        self._language = language
        self._pushed_at: deque[float] = deque()
        self._clock: deque[tuple[float, float]] = deque(maxlen=4096)  # (audio end, wall time)
        self._audio_seen = 0.0
        self._usage_reported = 0.0
        self._request_id = ""
        self._anchored = False

    def push_frame(self, frame: rtc.AudioFrame) -> None:
        super().push_frame(frame)
        self._pushed_at.append(time.time())  # when the audio arrived, for wall-clock times

    async def _run(self) -> None:
        decoder = await asyncio.wrap_future(self._sphinx._submit(self._sphinx._pool.acquire))
        recogniser = _Recogniser(decoder, self._sphinx.options)
        resampler = _Resampler()
        running: Future[list[_Output]] | None = None

        async def work(fn: Callable[..., list[_Output]], *args: Any) -> None:
            nonlocal running
            running = self._sphinx._submit(fn, *args)
            for output in await asyncio.wrap_future(running):
                self._emit(output, recogniser)

        try:
            async for item in self._input_ch:
                batch = [item]
                # when audio arrives faster than real time, decode it in fewer, larger calls
                while not self._input_ch.empty() and len(batch) < 50:
                    batch.append(self._input_ch.recv_nowait())
                pcm = bytearray()
                for entry in batch:
                    if isinstance(entry, rtc.AudioFrame):
                        pcm += resampler.push(entry)
                        self._note_arrival(entry)
                    else:
                        pcm += resampler.flush()
                        await work(recogniser.feed, bytes(pcm))
                        await work(recogniser.finish)
                        self._report_usage(recogniser.position)
                        pcm.clear()
                if pcm:
                    await work(recogniser.feed, bytes(pcm))
            await work(recogniser.finish)
            self._report_usage(recogniser.position)
        finally:
            pool = self._sphinx._pool

            def give_back(_: object = None) -> None:
                # a decoder left inside an utterance (stream cancelled mid-speech) is dropped
                if not recogniser.speaking:
                    pool.release(decoder)

            if running is not None and not running.done():
                running.add_done_callback(give_back)  # the thread still uses the decoder
            else:
                give_back()
            self._sphinx._streams.discard(self)

    def _note_arrival(self, frame: rtc.AudioFrame) -> None:
        wall = self._pushed_at.popleft() if self._pushed_at else time.time()
        if not self._anchored and _STREAM_HAS_START_TIME:
            # anchor the stream's wall clock at its first audio, as the base class suggests
            self.start_time = wall - frame.duration  # type: ignore[misc]
        self._anchored = True
        self._audio_seen += frame.duration
        self._clock.append((self._audio_seen, wall))

    def _wall_time(self, audio_time: float) -> float:
        """When the audio at ``audio_time`` (seconds into the stream) was pushed."""
        for end, wall in self._clock:
            if end >= audio_time:
                return wall - (end - audio_time)
        if self._clock:
            end, wall = self._clock[-1]
            return wall - max(0.0, end - audio_time)
        return time.time()

    def _emit(self, output: _Output, recogniser: _Recogniser) -> None:
        offset = self.start_time_offset
        send = self._event_ch.send_nowait
        if isinstance(output, _Started):
            self._request_id = _request_id()
            send(
                stt.SpeechEvent(
                    type=stt.SpeechEventType.START_OF_SPEECH,
                    request_id=self._request_id,
                    **_known(_EVENT_FIELDS, {"speech_start_time": self._wall_time(output.at)}),
                )
            )
        elif isinstance(output, _Interim):
            send(
                stt.SpeechEvent(
                    type=stt.SpeechEventType.INTERIM_TRANSCRIPT,
                    request_id=self._request_id,
                    alternatives=[
                        stt.SpeechData(
                            language=self._language,  # type: ignore[arg-type]
                            text=output.text,
                            start_time=offset + output.start,
                            end_time=offset + output.at,
                        )
                    ],
                )
            )
        else:
            timing = {
                "speech_start_time": self._wall_time(output.start),
                "speech_end_time": self._wall_time(output.end),
            }
            if output.text:
                send(
                    stt.SpeechEvent(
                        type=stt.SpeechEventType.FINAL_TRANSCRIPT,
                        request_id=self._request_id,
                        alternatives=[
                            _speech_data(
                                self._language,
                                output.text,
                                output.start,
                                output.end,
                                output.words,
                                offset=offset,
                                confidence=output.confidence,
                            )
                        ],
                        **_known(_EVENT_FIELDS, timing),
                    )
                )
            send(
                stt.SpeechEvent(
                    type=stt.SpeechEventType.END_OF_SPEECH,
                    request_id=self._request_id,
                    **_known(_EVENT_FIELDS, {"speech_end_time": timing["speech_end_time"]}),
                )
            )
            self._report_usage(recogniser.position)

    def _report_usage(self, position: float) -> None:
        audio = position - self._usage_reported
        if audio <= 0:
            return
        self._usage_reported = position
        self._event_ch.send_nowait(
            stt.SpeechEvent(
                type=stt.SpeechEventType.RECOGNITION_USAGE,
                request_id=self._request_id,
                recognition_usage=stt.RecognitionUsage(audio_duration=audio),
            )
        )
