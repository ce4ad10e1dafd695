"""A scripted streaming STT that really consumes the session's audio.

Each scripted event fires once the stream has been fed that many seconds of audio, so its
timing follows the audio the session actually delivers, like a real recogniser's would.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Literal

from livekit import rtc
from livekit.agents import APIConnectionError, stt, utils
from livekit.agents.types import (
    DEFAULT_API_CONNECT_OPTIONS,
    NOT_GIVEN,
    APIConnectOptions,
    NotGivenOr,
)

ScriptedKind = Literal["start", "interim", "final", "end", "error"]

_EVENT_TYPES = {
    "start": stt.SpeechEventType.START_OF_SPEECH,
    "interim": stt.SpeechEventType.INTERIM_TRANSCRIPT,
    "final": stt.SpeechEventType.FINAL_TRANSCRIPT,
    "end": stt.SpeechEventType.END_OF_SPEECH,
}


@dataclass(frozen=True)
class Say:
    """Emit ``kind`` (with ``text``) once ``at`` seconds of audio were pushed; ``delay`` lags it."""

    at: float
    kind: ScriptedKind
    text: str = ""
    delay: float = 0.0


class ScriptedSTT(stt.STT):  # type: ignore[type-arg]  # generic from 1.8 only
    """Streams ``script`` against the pushed audio; ``streams`` records every stream opened."""

    def __init__(self, script: list[Say], *, label: str = "scripted-stt") -> None:
        super().__init__(capabilities=stt.STTCapabilities(streaming=True, interim_results=True))
        self.script = sorted(script, key=lambda s: s.at)
        self._label_name = label
        self.streams: list[ScriptedSpeechStream] = []

    @property
    def label(self) -> str:
        return self._label_name

    async def _recognize_impl(
        self,
        buffer: Any,
        *,
        language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
    ) -> stt.SpeechEvent:
        finals = [s.text for s in self.script if s.kind == "final"]
        return _event("final", " ".join(finals))

    def stream(
        self,
        *,
        language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
    ) -> ScriptedSpeechStream:
        stream = ScriptedSpeechStream(stt=self, script=self.script, conn_options=conn_options)
        self.streams.append(stream)
        return stream


class ScriptedSpeechStream(stt.SpeechStream):
    def __init__(
        self, *, stt: ScriptedSTT, script: list[Say], conn_options: APIConnectOptions
    ) -> None:
        super().__init__(stt=stt, conn_options=conn_options)
        self._script = list(script)
        self.audio_seconds = 0.0

    async def _run(self) -> None:
        pending: set[asyncio.Task[None]] = set()
        try:
            async for item in self._input_ch:
                if not isinstance(item, rtc.AudioFrame):
                    continue
                self.audio_seconds += item.duration
                while self._script and self._script[0].at <= self.audio_seconds:
                    step = self._script.pop(0)
                    if step.kind == "error":
                        raise APIConnectionError(f"scripted STT failure at {step.at}s")
                    if step.delay > 0:
                        task = asyncio.create_task(self._emit_later(step))
                        pending.add(task)
                        task.add_done_callback(pending.discard)
                    else:
                        self._event_ch.send_nowait(_event(step.kind, step.text))
        finally:
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)

    async def _emit_later(self, step: Say) -> None:
        await asyncio.sleep(step.delay)
        if not self._event_ch.closed:
            self._event_ch.send_nowait(_event(step.kind, step.text))


def _event(kind: ScriptedKind, text: str) -> stt.SpeechEvent:
    spoken = kind in ("interim", "final")
    language: Any = "en"  # a LanguageCode from 1.8 on, a plain str before
    alternatives = [stt.SpeechData(language=language, text=text)] if spoken else []
    return stt.SpeechEvent(
        type=_EVENT_TYPES[kind], request_id=utils.shortuuid("req_"), alternatives=alternatives
    )
