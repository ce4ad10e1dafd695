"""Scripted wire scenarios: a JSON file per scenario, replayed against a loopback server.

A scenario file::

    {
      "provider": "openai",            # or "gemini"
      "description": "why this scenario exists",
      "audio": false,                  # true: a paced silent microphone feeds the session
      "steps": [
        {"at": 0.0, "send": [{"type": "input_audio_buffer.speech_started", ...}]},
        {"at": 0.3, "send_raw": "{not json"},
        {"at": 0.4, "send": [{...}], "malformed": true},   # skip SDK validation on purpose
        {"at": 0.5, "drop": true},                         # server closes the socket
        {"answer": "response.create", "send": [...]},      # reply to the client's request
        {"wait": "connection", "count": 2},                # block until the client is back
        {"wait": "finals", "count": 2}
      ],
      "expect": {"client_events": ["session.update"]},
      "utterances": true,              # also snapshot livekit_ext.Utterances' events
      "traces": true,                  # also snapshot the utterance attributes of LiveKit's spans
      "gemini_interim_transcripts": true   # Gemini: opt in to interim input transcripts
    }

``at`` is seconds from the scenario start. Every ``send`` event is validated against the
provider SDK's own types unless ``malformed`` says it is bad on purpose.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .audio import PacedAudioInput
from .openai_server import OpenAIRealtimeServer
from .recorder import SessionRecorder
from .sessions import gemini_realtime_session, openai_realtime_session

_HANDSHAKES = frozenset({"session.update", "setup"})  # the first client event of OpenAI / Gemini

TIMER_SLACK = 0.02
"""An event loop timer may fire this much early; a time this close before a step is its."""

Timeline = list[tuple[float, float]]
"""``(at, sent)`` per timed step: its scenario time and when it really went out (both seconds
from the scenario start)."""


@dataclass
class Scenario:
    name: str
    provider: str
    steps: list[dict[str, Any]]
    description: str = ""
    audio: bool = False
    expect: dict[str, Any] = field(default_factory=dict)
    stt_script: list[dict[str, Any]] = field(default_factory=list)
    """For ``provider: "stt"``: what the scripted STT says, by seconds of audio consumed."""
    utterances: bool = False
    """Also observe ``Utterances(session)``: the snapshot gains an ``utterances`` list."""
    gemini_interim_transcripts: bool = False
    """For ``provider: "gemini"``: opt the model in (``livekit_ext.gemini_interim_transcripts``)."""
    turn_detection: str | None = None
    """For ``provider: "stt"``: the AgentSession's ``turn_detection`` (e.g. ``"stt"``)."""
    traces: bool = False
    """Record LiveKit's spans (in memory, through its tracer-provider hook): the snapshot gains
    a ``spans`` list, the utterance attributes of each span that carries one."""

    @classmethod
    def load(cls, path: Path) -> Scenario:
        data = json.loads(path.read_text())
        return cls(
            name=path.stem,
            provider=data["provider"],
            steps=data["steps"],
            description=data.get("description", ""),
            audio=bool(data.get("audio", False)),
            expect=data.get("expect", {}),
            stt_script=data.get("stt_script", []),
            utterances=bool(data.get("utterances", False)),
            turn_detection=data.get("turn_detection"),
            gemini_interim_transcripts=bool(data.get("gemini_interim_transcripts", False)),
            traces=bool(data.get("traces", False)),
        )


@dataclass
class ScenarioResult:
    started_at: float
    recorder: SessionRecorder
    server: Any
    errors: list[Any]


async def _client_caught_up(max_rounds: int = 200) -> None:
    """Let the client (same event loop) handle every frame already sent before the next goes.

    On a stalled machine a step's timer and the client's reads of the previous step wake
    together; without this the next step could overtake the client's handling of the last.
    """
    loop = asyncio.get_running_loop()
    ready = getattr(loop, "_ready", None)  # CPython's queue of runnable callbacks
    idle = 0
    for _ in range(max_rounds):
        await asyncio.sleep(0)  # one loop iteration: polls the sockets, runs what is ready
        idle = idle + 1 if ready is not None and not ready else 0
        if idle >= 3:
            return


async def play_steps(
    scenario: Scenario, server: Any, recorder: SessionRecorder, t0: float
) -> Timeline:
    """Play the steps; when each timed step really went out (see :func:`normalise`)."""
    timeline: Timeline = []
    for step in scenario.steps:
        if "at" in step:
            delay = t0 + float(step["at"]) - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await _client_caught_up()
            timeline.append((float(step["at"]), time.time() - t0))
        if server is None and any(key in step for key in ("send", "send_raw", "drop")):
            raise ValueError(f"scenario {scenario.name}: an STT scenario has no server to drive")
        if "answer" in step:
            # a reply to the client's request: echo its metadata, as the service does (the
            # plugin pairs its generate_reply with the response through it)
            request = await server.wait_for_client_event(step["answer"], timeout=10)
            metadata = (request.get("response") or {}).get("metadata")
            for event in step.get("send", []):
                if event.get("type") == "response.created" and metadata is not None:
                    event["response"] = {**event["response"], "metadata": metadata}
        if "send" in step:
            await server.send(*step["send"], validate=not step.get("malformed", False))
        if "send_raw" in step:
            await server.send_raw(step["send_raw"])
        if step.get("drop"):
            await server.drop()
        if (wait := step.get("wait")) is not None:
            count = int(step.get("count", 1))
            if wait == "connection":
                conn = await server.wait_for_connection(count, timeout=15)

                def handshaken(c: Any = conn) -> bool:
                    # OpenAI names the event in "type"; a Gemini message is keyed by its kind
                    return any(
                        e.get("type") in _HANDSHAKES or not _HANDSHAKES.isdisjoint(e)
                        for e in c.client_events
                    )

                await server.wait_until(handshaken, timeout=15)
            elif wait == "client_event":
                if server is None:
                    raise ValueError(f"scenario {scenario.name}: no server to wait on")
                await server.wait_for_client_event(
                    lambda e, kind=step["type"]: e.get("type") == kind or kind in e, timeout=10
                )
            elif wait == "user_messages":

                def enough_user_messages(n: int = count) -> bool:
                    return len(recorder.messages("user")) >= n

                await recorder.wait_for(enough_user_messages, timeout=10, what="user messages")
            elif wait == "finals":
                await recorder.wait_for_finals(count, timeout=10)
            elif wait == "items":

                def enough_items(n: int = count) -> bool:
                    return len(recorder.items) >= n

                await recorder.wait_for(enough_items, timeout=10, what=f"{count} items")
            else:
                raise ValueError(f"scenario {scenario.name}: unknown wait {wait!r}")
    await asyncio.sleep(float(scenario.expect.get("settle", 0.3)))
    return timeline


async def run_openai_scenario(scenario: Scenario, exporter: Any = None) -> dict[str, Any]:
    """Replay ``scenario`` against the real OpenAI plugin; the normalised observation."""
    async with OpenAIRealtimeServer() as server:
        mic = PacedAudioInput() if scenario.audio else None
        async with openai_realtime_session(server, audio=mic) as (session, recorder):
            if scenario.utterances:
                recorder.watch_utterances(session)
            t0 = time.time()
            timeline = await play_steps(scenario, server, recorder, t0)
        observed = normalise(
            recorder,
            t0,
            timeline,
            audio_clock=scenario.audio,
            session_updates=server.session_updates(),
            spans=_finished(exporter),
        )
        observed["tool_outputs"] = [
            {"call_id": item.get("call_id"), "output": item.get("output")}
            for e in server.client_events_of("conversation.item.create")
            if (item := e.get("item") or {}).get("type") == "function_call_output"
        ]
        return observed


async def run_gemini_scenario(scenario: Scenario, exporter: Any = None) -> dict[str, Any]:
    """Replay ``scenario`` against the real Gemini Live plugin; the normalised observation."""
    from .gemini_server import GeminiLiveServer

    async with GeminiLiveServer() as server:
        mic = PacedAudioInput() if scenario.audio else None
        async with gemini_realtime_session(server, audio=mic) as (session, recorder):
            if scenario.gemini_interim_transcripts:
                from .. import gemini_interim_transcripts

                gemini_interim_transcripts(session.llm)
            if scenario.utterances:
                recorder.watch_utterances(session)
            t0 = time.time()
            timeline = await play_steps(scenario, server, recorder, t0)
        observed = normalise(
            recorder, t0, timeline, audio_clock=scenario.audio, spans=_finished(exporter)
        )
        observed["tool_outputs"] = [
            {"id": r.get("id"), "name": r.get("name"), "response": r.get("response")}
            for e in server.client_events
            # the plugin writes the message key snake_case and the inner field camelCase
            for response in [e.get("tool_response") or e.get("toolResponse") or {}]
            for r in response.get("functionResponses") or response.get("function_responses") or []
        ]
        return observed


async def run_stt_scenario(scenario: Scenario, exporter: Any = None) -> dict[str, Any]:
    """An STT pipeline: the scripted STT consumes a paced microphone; a text LLM replies."""
    from livekit.agents import AgentSession

    from .llm import ScriptedLLM
    from .sessions import running_session
    from .stt import Say, ScriptedSTT

    script = [
        Say(at=float(s["at"]), kind=s["kind"], text=s.get("text", ""), delay=s.get("delay", 0.0))
        for s in scenario.stt_script
    ]
    extra: dict[str, Any] = {}
    if scenario.turn_detection is not None:
        extra["turn_detection"] = scenario.turn_detection
    session: AgentSession[Any] = AgentSession(stt=ScriptedSTT(script), llm=ScriptedLLM(), **extra)
    mic = PacedAudioInput()
    async with running_session(session, audio=mic) as recorder:
        if scenario.utterances:
            recorder.watch_utterances(session)
        await play_steps(scenario, None, recorder, time.time())
    # audio time is the scenario's clock: offset 0 is the first frame the session took
    t0 = mic.started_at or 0.0
    timeline = [(at, at) for at in sorted({s.at + s.delay for s in script})]
    return normalise(recorder, t0, timeline, audio_clock=True, spans=_finished(exporter))


def _finished(exporter: Any) -> Sequence[Any] | None:
    """The spans an in-memory exporter holds (the session is closed: all have ended)."""
    return None if exporter is None else exporter.get_finished_spans()


async def run_scenario(scenario: Scenario) -> dict[str, Any]:
    runners = {
        "openai": run_openai_scenario,
        "gemini": run_gemini_scenario,
        "stt": run_stt_scenario,
    }
    if scenario.provider not in runners:
        raise ValueError(f"scenario {scenario.name}: unknown provider {scenario.provider!r}")
    if not scenario.traces:
        return await runners[scenario.provider](scenario)
    from .traces import recording_spans

    with recording_spans() as exporter:
        return await runners[scenario.provider](scenario, exporter)


_ITEMS = ("message", "function_call", "function_call_output")


def _item_view(i: Any, item: Callable[[Any], str | None]) -> dict[str, Any]:
    if i.type == "message":
        return {"role": i.role, "item_id": item(i.id), "text": i.text_content}
    if i.type == "function_call":
        return {"function_call": i.name, "arguments": json.loads(i.arguments or "{}")}
    return {"function_call_output": i.name, "output": i.output, "is_error": i.is_error}


def normalise(
    recorder: SessionRecorder,
    t0: float,
    timeline: Timeline,
    *,
    audio_clock: bool = False,
    session_updates: list[dict[str, Any]] | None = None,
    spans: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """What a snapshot holds: ids by order of appearance, times as the step that caused them.

    A time is written as the ``at`` of the latest scenario step at or before it: an utterance
    that began with the step at 0.5 s reads 0.5 however long the loopback hop took on a
    loaded machine, and one that began earlier (a late transcript) keeps its earlier step.
    Times read off the audio clock (``audio_clock``: the microphone is paced by scenario
    time) count a step as before them once it was due. Others are taken when an event was
    handled, so a step counts only once it had really been sent too: a start taken from an
    event handled late, on a stalled machine, stays with the step that sent it.
    """
    ids: dict[str, str] = {}

    def item(value: Any) -> str | None:
        if value is None:
            return None
        return ids.setdefault(str(value), f"item#{len(ids) + 1}")

    def offset(value: Any) -> float | None:
        if value is None:
            return None
        elapsed = float(value) - t0
        earlier = [
            at
            for at, sent in timeline
            if at <= elapsed + TIMER_SLACK and (audio_clock or sent <= elapsed)
        ]
        return max(earlier) if earlier else round(elapsed + TIMER_SLACK, 1)

    transcripts = [
        {
            "transcript": e.transcript,
            "is_final": e.is_final,
            "item_id": item(getattr(e, "item_id", None)),
            "speech_started_at": offset(getattr(e, "speech_started_at", None)),
            "source": getattr(e, "source", None),
        }
        for e in recorder.transcripts
    ]
    items = [_item_view(i, item) for i in recorder.items if getattr(i, "type", None) in _ITEMS]
    result: dict[str, Any] = {"user_input_transcribed": transcripts, "conversation_items": items}
    if hasattr(recorder, "utterances"):
        result["utterances"] = [
            {
                "event": name,
                "item_id": item(u.item_id),
                "transcript": u.transcript,
                "final": u.final,
                "speech_started_at": offset(u.speech_started_at),
                "speech_stopped_at": offset(u.speech_stopped_at),
                "source": u.source,
            }
            for name, u in recorder.utterances
        ]
    if session_updates is not None:
        result["session_updates"] = session_updates
    if spans is not None:
        result["spans"] = normalise_spans(spans, item, offset)
    return result


TRACED_SPANS = ("user_speaking", "user_turn", "user_transcript", "agent_turn")
"""The spans whose utterance attributes a scenario snapshots (1.8's ``realtime_inference``
carries the same as its ``agent_turn``, and exists on no older release)."""


def normalise_spans(
    spans: Sequence[Any],
    item: Callable[[Any], str | None],
    offset: Callable[[Any], float | None],
) -> list[dict[str, Any]]:
    """The utterance attributes of each traced span that carries one: ids by order of
    appearance (shared with the rest of the snapshot), times as the step that caused them, the
    parent span's name and the items its links point at; sorted by name, then item."""
    responses: dict[str, str] = {}
    by_id = {s.context.span_id: s for s in spans}
    views = []
    for span in spans:
        attrs = dict(span.attributes or {})
        if span.name not in TRACED_SPANS or "lk.utterance.item_id" not in attrs:
            continue
        view: dict[str, Any] = {"span": span.name}
        for key, value in sorted(attrs.items()):
            if key == "lk.utterance.item_id":
                view[key] = item(value)
            elif key.endswith("_at") and key.startswith("lk.utterance."):
                view[key] = offset(value)
            elif key == "gen_ai.response.id":
                view[key] = responses.setdefault(str(value), f"response#{len(responses) + 1}")
            elif key.startswith("lk.utterance."):
                view[key] = value
            elif key == "lk.pii.user_transcript" and span.name != "user_turn":
                view[key] = value  # (user_turn's is upstream's own, named per release)
        parent = by_id.get(span.parent.span_id) if span.parent is not None else None
        view["parent"] = parent.name if parent is not None else None
        view["links"] = [
            item((link.attributes or {}).get("lk.utterance.item_id")) for link in span.links
        ]
        views.append(view)
    return sorted(views, key=lambda v: (v["span"], v["lk.utterance.item_id"] or ""))
