"""Parallel STT over the wire: a realtime model leads, an STT on the same audio is heard too.

Every session runs the real OpenAI realtime plugin (the Gemini Live one at the end) against
a loopback server, with a ``ScriptedSTT`` consuming the audio the session really delivers
(``PacedAudioInput`` at real time). Times in the scripts are seconds of audio; the realtime
server events are sent when the microphone reaches the given time, carrying matching
``audio_start_ms``/``audio_end_ms``.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from livekit import rtc
from livekit.agents import Agent, AgentSession, APIConnectionError, APIConnectOptions, stt, vad
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, NOT_GIVEN, NotGivenOr
from livekit.agents.voice.agent_session import SessionConnectOptions
from livekit.plugins import openai

import livekit_ext
from livekit_ext import identity
from livekit_ext.testing import GeminiLiveServer, OpenAIRealtimeServer
from livekit_ext.testing import gemini_server as gemini_wire
from livekit_ext.testing import openai_server as wire
from livekit_ext.testing.audio import PacedAudioInput
from livekit_ext.testing.recorder import SessionRecorder
from livekit_ext.testing.stt import Say, ScriptedSpeechStream, ScriptedSTT

pytestmark = pytest.mark.wire

# 1.5+ lets the close skip waiting 2 s for a last STT transcript; on 1.4.6 the tests close
# right after the last STT final instead, which upstream does not wait for either
_FAST_CLOSE: dict[str, Any] = (
    {"session_close_transcript_timeout": 0.1}
    if "session_close_transcript_timeout" in inspect.signature(AgentSession.__init__).parameters
    else {}
)

Timeline = list[tuple[float, list[dict[str, Any]]]]


def realtime_utterance(
    item_id: str, start: float, stop: float, text: str, *, previous: str | None = None
) -> Timeline:
    """What the server says about one utterance: started a little after ``start`` (its VAD's
    latency), stopped and transcribed just after ``stop``; offsets in audio milliseconds."""
    return [
        (start + 0.1, [wire.speech_started(item_id, round(start * 1000))]),
        (
            stop + 0.05,
            [
                wire.speech_stopped(item_id, round(stop * 1000)),
                wire.committed(item_id, previous),
                wire.transcription_completed(item_id, text),
            ],
        ),
    ]


@dataclass
class Scene:
    server: OpenAIRealtimeServer
    session: AgentSession
    mic: PacedAudioInput
    rec: SessionRecorder
    closes: list[Any] = field(default_factory=list)
    """``close`` events the session emitted before the test itself closed it."""

    async def at(self, audio_time: float, *, timeout: float = 10.0) -> None:
        await self.rec.wait_for(
            lambda: self.mic.audio_time >= audio_time, timeout=timeout, what=f"audio {audio_time}s"
        )

    async def play(self, *timelines: Timeline) -> None:
        steps = sorted((step for timeline in timelines for step in timeline), key=lambda s: s[0])
        for audio_time, events in steps:
            await self.at(audio_time)
            await self.server.send(*events)

    def stt_events(self) -> list[Any]:
        return [e for e in self.rec.transcripts if identity(e).source == "stt"]

    def realtime_events(self) -> list[Any]:
        return [e for e in self.rec.transcripts if identity(e).source == "realtime"]

    def stt_final(self, text: str) -> Any:
        return next(e for e in self.stt_events() if e.is_final and e.transcript == text)

    def realtime_final(self, item_id: str) -> Any:
        return next(e for e in self.realtime_events() if e.is_final and e.item_id == item_id)

    async def wait_for_stt(self, text: str, *, timeout: float = 5.0) -> Any:
        await self.rec.wait_for(
            lambda: any(e.is_final and e.transcript == text for e in self.stt_events()),
            timeout=timeout,
            what=f"STT final {text!r}",
        )
        return self.stt_final(text)

    async def wait_for_realtime(self, item_id: str, *, timeout: float = 5.0) -> Any:
        await self.rec.wait_for(
            lambda: any(e.is_final and e.item_id == item_id for e in self.realtime_events()),
            timeout=timeout,
            what=f"realtime final of {item_id}",
        )
        return self.realtime_final(item_id)

    def user_messages(self) -> list[tuple[str, str | None]]:
        return [(m.id, m.text_content) for m in self.rec.messages("user")]

    def client_events(self) -> list[dict[str, Any]]:
        """What the plugin sent the model, less the audio itself."""
        return [e for e in self.server.client_events if e["type"] != "input_audio_buffer.append"]


@asynccontextmanager
async def scene(
    engine: stt.STT,
    *,
    enabled: bool = True,
    stt_max_retry: int | None = None,
    model_kwargs: dict[str, Any] | None = None,
) -> AsyncIterator[Scene]:
    async with OpenAIRealtimeServer() as server:
        model = openai.realtime.RealtimeModel(
            base_url=server.base_url, api_key="test", **(model_kwargs or {})
        )
        kwargs: dict[str, Any] = dict(_FAST_CLOSE)
        if stt_max_retry is not None:
            retry = APIConnectOptions(max_retry=stt_max_retry, retry_interval=0.05)
            kwargs["conn_options"] = SessionConnectOptions(stt_conn_options=retry)
        session: AgentSession = AgentSession(llm=model, stt=engine, **kwargs)
        if enabled:
            livekit_ext.enable_parallel_stt(session)
        mic = PacedAudioInput()
        session.input.audio = mic
        current = Scene(server, session, mic, SessionRecorder(session))
        early: list[Any] = []
        session.on("close", early.append)
        await session.start(Agent(instructions="You are a test agent."))
        try:
            await server.wait_for_client_event("session.update")
            yield current
        finally:
            current.closes = list(early)
            mic.close()
            await session.aclose()
            await model.aclose()  # the model owns an HTTP session the AgentSession does not close


# -- the main scenario: two realtime utterances, one noise only the STT heard ---------------

MAIN_STT = [
    Say(0.2, "start"),
    Say(0.35, "interim", "my number"),
    Say(0.5, "final", "my number is"),
    Say(0.6, "interim", "four"),
    Say(0.8, "final", "four seven", delay=0.4),  # arrives after item_A completed
    Say(0.85, "end"),
    Say(1.2, "start"),
    Say(1.5, "final", "thanks", delay=0.5),  # arrives after item_B completed
    Say(1.55, "end"),
    Say(2.2, "start"),
    Say(2.3, "final", "cough"),  # no realtime utterance here
    Say(2.35, "end"),
]
MAIN_REALTIME = [
    *realtime_utterance("item_A", 0.2, 0.8, "my number is 47"),
    *realtime_utterance("item_B", 1.2, 1.55, "thanks", previous="item_A"),
]


async def run_main(*, enabled: bool) -> Scene:
    async with scene(ScriptedSTT(MAIN_STT), enabled=enabled) as current:
        await current.play(MAIN_REALTIME)
        await current.at(2.3)
        if enabled:
            await current.wait_for_stt("cough")
        else:
            await current.wait_for_realtime("item_B")
    return current


async def test_stt_transcripts_carry_the_realtime_utterance_they_overlap() -> None:
    current = await run_main(enabled=True)

    said = [(e.transcript, e.is_final, e.item_id) for e in current.stt_events()]
    fresh = said[-1][2]
    assert said == [
        ("my number", False, "item_A"),
        ("my number is", True, "item_A"),
        ("four", False, "item_A"),
        ("four seven", True, "item_A"),  # two finals in one realtime utterance, one late
        ("thanks", True, "item_B"),  # late too
        ("cough", True, fresh),
    ]
    assert fresh is not None and fresh.startswith("item_") and fresh not in ("item_A", "item_B")

    a_final, b_final = current.realtime_final("item_A"), current.realtime_final("item_B")
    assert current.stt_final("four seven").created_at > a_final.created_at
    assert current.stt_final("thanks").created_at > b_final.created_at
    for ev in current.stt_events():
        started = identity(ev).speech_started_at
        assert started is not None and started <= ev.created_at
        if ev.item_id == "item_A":
            assert started == identity(a_final).speech_started_at
        if ev.item_id == "item_B":
            assert started == identity(b_final).speech_started_at
    assert identity(current.stt_final("cough")).speech_started_at > b_final.created_at  # type: ignore[operator]

    log = livekit_ext.transcripts(current.session)
    assert [(identity(e).source, e.transcript) for e in log.for_item("item_A")] == [
        ("stt", "my number is"),
        ("realtime", "my number is 47"),
        ("stt", "four seven"),
    ]
    assert [(identity(e).source, e.transcript) for e in log.for_item("item_B")] == [
        ("realtime", "thanks"),
        ("stt", "thanks"),
    ]
    assert log.latest(source="stt") is current.stt_final("cough")
    assert log.latest(source="realtime") is b_final
    assert log.latest() is current.stt_final("cough")
    assert log.for_item("item_nope") == []


async def test_the_conversation_is_untouched_and_nothing_changes_without_enabling() -> None:
    enabled, plain = await asyncio.gather(run_main(enabled=True), run_main(enabled=False))

    assert plain.stt_events() == []  # upstream drops them: no double events
    assert {identity(e).source for e in plain.rec.transcripts} == {"realtime"}
    assert len(enabled.stt_events()) == 6

    def realtime(s: Scene) -> list[tuple[str, bool, str | None]]:
        return [(e.transcript, e.is_final, e.item_id) for e in s.realtime_events()]

    assert realtime(enabled) == realtime(plain)
    assert [e["type"] for e in enabled.client_events()] == [
        e["type"] for e in plain.client_events()
    ]
    realtime_messages = [("item_A", "my number is 47"), ("item_B", "thanks")]
    for s in (enabled, plain):
        # no reply, nothing of the STT sent to the model, no error, no early close
        assert "response.create" not in [e["type"] for e in s.client_events()]
        assert s.user_messages()[:2] == realtime_messages
        assert s.rec.messages("assistant") == []
        assert "four seven" not in json.dumps(s.client_events())
        assert "cough" not in json.dumps(s.client_events())
        assert s.rec.errors == [] and s.closes == []
    # upstream commits the STT's words as a user message when the session closes; with the
    # parallel STT the realtime model's transcripts are the only user messages
    assert enabled.user_messages() == realtime_messages
    history = enabled.session.history.items
    assert [m.id for m in history if getattr(m, "role", None) == "user"] == ["item_A", "item_B"]


# -- failures -------------------------------------------------------------------------------


class PerStreamSTT(ScriptedSTT):
    """Plays ``scripts[n]`` on its n-th stream, so a recreated stream does not replay a failure."""

    def __init__(self, scripts: Sequence[list[Say]]) -> None:
        super().__init__(scripts[0])
        self._scripts = [sorted(s, key=lambda step: step.at) for s in scripts]

    def stream(
        self,
        *,
        language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
    ) -> ScriptedSpeechStream:
        script = self._scripts[min(len(self.streams), len(self._scripts) - 1)]
        stream = ScriptedSpeechStream(stt=self, script=script, conn_options=conn_options)
        self.streams.append(stream)
        return stream


async def test_an_stt_failing_mid_utterance_never_ends_the_conversation() -> None:
    engine = PerStreamSTT(
        [
            # retried once (recoverable), then fails for good: 1.4/1.5 would close the session
            [
                Say(0.2, "start"),
                Say(0.35, "interim", "call me"),
                Say(0.5, "error"),
                Say(0.5, "error"),
            ],
            # the recreated stream first reads the audio queued while it was down: its clock
            # starts about where the failure happened (~0.55 s)
            [Say(0.9, "start"), Say(1.2, "final", "four seven"), Say(1.25, "end")],
        ]
    )
    async with scene(engine, stt_max_retry=1) as current:
        await current.play(
            realtime_utterance("item_A", 0.2, 0.8, "call me at"),
            realtime_utterance("item_B", 1.4, 1.85, "four seven", previous="item_A"),
        )
        await current.wait_for_realtime("item_B")
        await current.wait_for_stt("four seven")

    stt_errors = [e for e in current.rec.errors if isinstance(e.error, stt.STTError)]
    assert len(stt_errors) >= 2
    assert all(e.error.recoverable for e in stt_errors)
    assert current.closes == []
    assert len(engine.streams) >= 2
    assert [(e.transcript, e.item_id) for e in current.stt_events()] == [
        ("call me", "item_A"),
        ("four seven", "item_B"),
    ]
    assert current.user_messages() == [("item_A", "call me at"), ("item_B", "four seven")]
    assert "response.create" not in [e["type"] for e in current.client_events()]


async def test_an_stt_slower_than_the_model_still_lands_on_the_right_utterance() -> None:
    lag = 1.0
    engine = ScriptedSTT(
        [
            Say(0.2, "start"),
            Say(0.4, "interim", "call", delay=lag),
            Say(0.7, "final", "call me", delay=lag),
            Say(0.75, "end"),
            Say(1.0, "start"),
            Say(1.3, "final", "now", delay=lag),
            Say(1.35, "end"),
        ]
    )
    async with scene(engine) as current:
        await current.play(
            realtime_utterance("item_A", 0.2, 0.75, "call me"),
            realtime_utterance("item_B", 1.0, 1.35, "now", previous="item_A"),
        )
        await current.wait_for_stt("now")

    assert [(e.transcript, e.item_id) for e in current.stt_events()] == [
        ("call", "item_A"),
        ("call me", "item_A"),
        ("now", "item_B"),
    ]
    # the realtime model was never held back by the STT
    assert current.realtime_final("item_A").created_at < current.stt_events()[0].created_at
    assert current.realtime_final("item_B").created_at < current.stt_final("now").created_at
    assert current.user_messages() == [("item_A", "call me"), ("item_B", "now")]
    assert current.rec.errors == [] and current.closes == []


class BatchSTT(stt.STT):
    """A non-streaming STT: each recognition takes ``latency`` and returns the next outcome."""

    def __init__(self, outcomes: list[str | Exception], *, latency: float = 0.3) -> None:
        super().__init__(capabilities=stt.STTCapabilities(streaming=False, interim_results=False))
        self.outcomes = list(outcomes)
        self.latency = latency

    async def _recognize_impl(
        self,
        buffer: Any,
        *,
        language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
    ) -> stt.SpeechEvent:
        outcome = self.outcomes.pop(0) if self.outcomes else ""
        if isinstance(outcome, Exception):
            raise outcome
        await asyncio.sleep(self.latency)
        return stt.SpeechEvent(
            type=stt.SpeechEventType.FINAL_TRANSCRIPT,
            alternatives=[stt.SpeechData(language="en", text=outcome)],
        )


class SegmentVAD(vad.VAD):
    """Speech exactly within ``segments`` (seconds of audio over all its streams)."""

    def __init__(self, segments: list[tuple[float, float]]) -> None:
        super().__init__(capabilities=vad.VADCapabilities(update_interval=0.1))
        self.segments = list(segments)
        self.audio_time = 0.0

    def stream(self) -> vad.VADStream:
        return _SegmentVADStream(self)


class _SegmentVADStream(vad.VADStream):
    def __init__(self, owner: SegmentVAD) -> None:
        self._owner = owner
        super().__init__(owner)

    async def _main_task(self) -> None:
        owner, speech = self._owner, list[rtc.AudioFrame]()
        async for frame in self._input_ch:
            if not isinstance(frame, rtc.AudioFrame):
                continue
            owner.audio_time += frame.duration
            if not owner.segments:
                continue
            start, end = owner.segments[0]
            if not speech and start <= owner.audio_time < end:
                speech.append(frame)
                self._event_ch.send_nowait(self._event(vad.VADEventType.START_OF_SPEECH, [frame]))
            elif speech and owner.audio_time >= end:
                owner.segments.pop(0)
                self._event_ch.send_nowait(self._event(vad.VADEventType.END_OF_SPEECH, speech))
                speech = []
            elif speech:
                speech.append(frame)

    @staticmethod
    def _event(kind: vad.VADEventType, frames: list[rtc.AudioFrame]) -> vad.VADEvent:
        duration = sum(f.duration for f in frames)
        return vad.VADEvent(
            type=kind,
            samples_index=0,
            timestamp=time.time(),
            speech_duration=duration,
            silence_duration=0.0,
            frames=frames,
        )


async def test_a_wrapped_non_streaming_stt_that_fails_is_restarted_and_matched() -> None:
    failure = APIConnectionError("recognition service unavailable")
    engine = stt.StreamAdapter(
        stt=BatchSTT([failure, failure, "four seven"]),
        vad=SegmentVAD([(0.2, 0.8), (1.2, 1.8)]),
    )
    async with scene(engine, stt_max_retry=1) as current:
        await current.play(
            realtime_utterance("item_A", 0.2, 0.8, "call me at"),
            realtime_utterance("item_B", 1.2, 1.8, "four seven", previous="item_A"),
        )
        final = await current.wait_for_stt("four seven")

    assert final.item_id == "item_B"
    assert final.created_at > current.realtime_final("item_B").created_at
    assert (
        identity(final).speech_started_at
        == identity(current.realtime_final("item_B")).speech_started_at
    )
    stt_errors = [e for e in current.rec.errors if isinstance(e.error, stt.STTError)]
    assert stt_errors and all(e.error.recoverable for e in stt_errors)
    assert current.closes == []
    assert current.user_messages() == [("item_A", "call me at"), ("item_B", "four seven")]


# -- enabling ---------------------------------------------------------------------------------


async def test_enabling_after_start_forwards_from_then_on() -> None:
    engine = ScriptedSTT(
        [
            Say(0.2, "start"),
            Say(0.4, "final", "before"),
            Say(0.45, "end"),
            Say(1.0, "start"),
            Say(1.2, "interim", "after"),
            Say(1.4, "final", "after all"),
            Say(1.45, "end"),
        ]
    )
    async with scene(engine, enabled=False) as current:
        await current.play(realtime_utterance("item_A", 0.2, 0.5, "before"))
        await current.at(0.7)
        log = livekit_ext.enable_parallel_stt(current.session, window=8)
        await current.play(realtime_utterance("item_B", 1.0, 1.4, "after all", previous="item_A"))
        await current.wait_for_stt("after all")
        await current.wait_for_realtime("item_B")

    assert [(e.transcript, e.item_id) for e in current.stt_events()] == [
        ("after", "item_B"),
        ("after all", "item_B"),
    ]
    assert log is livekit_ext.transcripts(current.session) and log.window == 8
    # the extension's log records from the session's start, so a late first call still sees
    # item_A; upstream alone (patches/, LIVEKIT_EXT_DISABLE=1) records from the first call
    before = [("realtime", "before")] if os.environ.get("LIVEKIT_EXT_DISABLE") != "1" else []
    assert [(identity(e).source, e.transcript) for e in log.for_item("item_A")] == before
    assert sorted((identity(e).source or "", e.transcript) for e in log.for_item("item_B")) == [
        ("realtime", "after all"),
        ("stt", "after all"),
    ]
    assert current.user_messages() == [("item_A", "before"), ("item_B", "after all")]


async def test_a_model_that_does_not_transcribe_keeps_upstreams_stt_events_once() -> None:
    """Upstream already forwards the STT when the model does not transcribe: no second copy,
    but the same identity as when the model transcribes."""
    engine = ScriptedSTT(
        [
            Say(0.2, "start"),
            Say(0.35, "interim", "hi"),
            Say(0.6, "final", "hi there"),
            Say(0.65, "end"),
        ]
    )
    no_transcription = {"input_audio_transcription": None}
    async with scene(engine, model_kwargs=no_transcription) as current:
        started: list[str] = []
        utterances = livekit_ext.Utterances(current.session)
        utterances.on("utterance_started", lambda u: started.append(u.item_id))
        await current.play(
            [
                (0.3, [wire.speech_started("item_A", 200)]),
                (0.7, [wire.speech_stopped("item_A", 650)]),
            ]
        )
        await current.wait_for_stt("hi there")
        await current.at(0.8)

    assert [(e.transcript, e.is_final, e.item_id) for e in current.rec.transcripts] == [
        ("hi", False, "item_A"),
        ("hi there", True, "item_A"),
    ]
    assert {identity(e).source for e in current.rec.transcripts} == {"stt"}
    assert started == ["item_A"]  # the identity is there before anyone observes the event
    assert [e.transcript for e in livekit_ext.transcripts(current.session).for_item("item_A")] == [
        "hi there"
    ]
    # the STT's words are the user's message, committed when the session closes, as upstream
    # does without the parallel STT: the model has no transcript of its own to stand for them
    assert [text for _, text in current.user_messages()] == ["hi there"]


async def test_upstream_listeners_never_see_a_forwarded_stt_transcript() -> None:
    """The room's user transcription stays the realtime model's; IVR loop detection too."""
    from livekit.agents.voice.ivr.ivr_activity import IVRActivity
    from livekit.agents.voice.room_io.room_io import RoomIO

    class NotARoom:
        pass

    class NotAnIVR:
        pass

    def reaches(handler: Any, owner: object, ev: Any) -> bool:
        try:
            handler(owner, ev)
        except AttributeError:  # upstream's handler ran and looked for its state
            return True
        return False

    seen: list[tuple[str | None, str, bool, bool]] = []

    def listener(ev: Any) -> None:
        if ev.transcript and ev.is_final:
            room = reaches(RoomIO._on_user_input_transcribed, NotARoom(), ev)
            ivr = reaches(IVRActivity._on_user_input_transcribed, NotAnIVR(), ev)
            seen.append((identity(ev).source, ev.transcript, room, ivr))

    engine = ScriptedSTT([Say(0.2, "start"), Say(0.5, "final", "four seven"), Say(0.55, "end")])
    async with scene(engine) as current:
        current.session.on("user_input_transcribed", listener)
        await current.play(realtime_utterance("item_A", 0.2, 0.6, "47"))
        await current.wait_for_stt("four seven")
        await current.wait_for_realtime("item_A")

    assert sorted(seen, key=lambda s: s[0] or "") == [
        ("realtime", "47", True, True),  # anything else reaches upstream's handlers
        ("stt", "four seven", False, False),
    ]


# -- Gemini: the utterance is named when the model hears speech start -------------------------


async def test_gemini_an_stt_faster_than_the_first_input_transcription_shares_its_item() -> None:
    """Gemini names the utterance only with its first input transcription; an STT transcript
    that comes before it still carries the id and start of the turn Gemini's voiceActivity
    opened, as do all the realtime transcripts of that turn."""
    engine = ScriptedSTT(
        [
            Say(0.2, "start"),
            Say(0.4, "interim", "my number"),
            Say(0.8, "interim", "my number is four"),
            Say(1.0, "final", "my number is four seven"),
            Say(1.05, "end"),
        ]
    )
    async with GeminiLiveServer() as server:
        session: AgentSession = AgentSession(llm=server.realtime_model(), stt=engine, **_FAST_CLOSE)
        livekit_ext.enable_parallel_stt(session)
        mic = PacedAudioInput()
        session.input.audio = mic
        rec = SessionRecorder(session)
        await session.start(Agent(instructions="You are a test agent."))
        try:
            await server.wait_for_setup()

            async def at(audio_time: float) -> None:
                await rec.wait_for(lambda: mic.audio_time >= audio_time, what=f"{audio_time}s")

            def said(source: str) -> list[Any]:
                return [e for e in rec.transcripts if identity(e).source == source]

            await at(0.2)
            activity_sent = time.time()
            await server.send(gemini_wire.voice_activity_start())
            await rec.wait_for(lambda: bool(said("stt")), what="the STT's first interim")
            assert said("realtime") == []  # Gemini has not named the utterance yet
            await at(0.6)
            await server.send(gemini_wire.input_transcription("my number is"))
            await at(0.9)
            await server.send(gemini_wire.input_transcription(" 47"))
            await rec.wait_for(lambda: any(e.is_final for e in said("stt")), what="the STT's final")
            await server.send(gemini_wire.turn_complete())
            await rec.wait_for(
                lambda: any(e.is_final for e in said("realtime")), what="Gemini's final"
            )
        finally:
            mic.close()
            await session.aclose()

    stt_events, realtime_events = said("stt"), said("realtime")
    assert [(e.transcript, e.is_final) for e in stt_events] == [
        ("my number", False),
        ("my number is four", False),
        ("my number is four seven", True),
    ]
    assert [(e.transcript, e.is_final) for e in realtime_events] == [
        ("my number is", False),
        ("my number is 47", False),
        ("my number is 47", True),
    ]
    assert stt_events[0].created_at < realtime_events[0].created_at
    events = stt_events + realtime_events
    item_ids = {e.item_id for e in events}
    assert len(item_ids) == 1, item_ids
    (item_id,) = item_ids
    assert isinstance(item_id, str) and item_id
    starts = {identity(e).speech_started_at for e in events}
    assert len(starts) == 1, starts
    (started,) = starts
    assert started is not None and activity_sent <= started <= stt_events[0].created_at
    assert [(m.id, m.text_content) for m in rec.messages("user")] == [(item_id, "my number is 47")]
    assert rec.errors == []


# -- the log and the utterance bookkeeping, without sockets ------------------------------------


def _event(text: str, *, final: bool, source: str, item_id: str) -> Any:
    from livekit.agents.voice.events import UserInputTranscribedEvent

    ev = UserInputTranscribedEvent(transcript=text, is_final=final)
    ev.item_id, ev.source = item_id, source  # type: ignore[attr-defined]
    return ev


@pytest.mark.unit
def test_the_transcript_log_is_bounded_and_answers_per_source_and_item() -> None:
    log = livekit_ext.TranscriptLog(window=3)
    assert log.latest() is None and log.for_item("x") == []
    events = [
        _event("hel", final=False, source="realtime", item_id="a"),
        _event("hello", final=True, source="realtime", item_id="a"),
        _event("hello there", final=True, source="stt", item_id="a"),
        _event("", final=False, source="realtime", item_id="b"),  # speech-stop marker: skipped
        _event("bye", final=True, source="realtime", item_id="b"),
        _event("by", final=False, source="stt", item_id="b"),
    ]
    for ev in events:
        log.record(ev)
    assert log.latest() is events[4]
    assert log.latest(source="stt") is events[2]
    assert log.latest(source="stt", final_only=False) is events[5]
    assert log.latest(final_only=False) is events[5]
    assert log.for_item("a") == [events[1], events[2]]
    log.record(_event("later", final=True, source="stt", item_id="c"))
    assert log.for_item("a") == [events[2]]  # the oldest final fell out of the window
    assert len(log) == 3
    with pytest.raises(ValueError):
        livekit_ext.TranscriptLog(window=0)
    with pytest.raises(ValueError):
        livekit_ext.enable_parallel_stt(object(), window=0)


async def test_noise_the_stt_never_transcribed_does_not_capture_the_next_transcript() -> None:
    engine = ScriptedSTT(
        [
            Say(0.2, "start"),  # a cough: START/END, nothing recognised
            Say(0.3, "end"),
            Say(2.0, "start"),
            Say(2.3, "final", "four seven"),
            Say(2.35, "end"),
        ]
    )
    async with scene(engine) as current:
        await current.play(realtime_utterance("item_A", 2.0, 2.4, "four seven"))
        await current.wait_for_stt("four seven")
        await current.wait_for_realtime("item_A")

    final = current.stt_final("four seven")
    assert final.item_id == "item_A"
    assert (
        identity(final).speech_started_at
        == identity(current.realtime_final("item_A")).speech_started_at
    )
