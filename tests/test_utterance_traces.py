"""LiveKit's own spans carry each user utterance (utterance_traces), through the real plugins
over the loopback servers, with the OTel SDK's in-memory exporter installed through LiveKit's
own hook (``livekit.agents.telemetry.set_tracer_provider``)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator
from typing import Any

import pytest

import livekit_ext
from livekit_ext.testing import GeminiLiveServer, OpenAIRealtimeServer
from livekit_ext.testing import gemini_server as gem
from livekit_ext.testing import openai_server as oai
from livekit_ext.testing.sessions import gemini_realtime_session, openai_realtime_session
from livekit_ext.testing.traces import recording_spans

_STATE = livekit_ext.status()["utterance_traces"].state
pytestmark = [
    pytest.mark.wire,
    pytest.mark.skipif(
        _STATE not in ("patched", "native"),
        reason="utterance_traces is not in effect (LIVEKIT_EXT_DISABLE on a release without it)",
    ),
]
extension_hooks = pytest.mark.skipif(
    _STATE != "patched", reason="the extension's own hooks (upstream's spans do it natively)"
)

ITEM = "lk.utterance.item_id"
TEXT = "lk.pii.user_transcript"


@pytest.fixture
def spans() -> Iterator[Any]:
    with recording_spans() as exporter:
        yield exporter


def _named(exporter: Any, name: str) -> list[Any]:
    return [s for s in exporter.get_finished_spans() if s.name == name]


def _by_item(exporter: Any, name: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for span in _named(exporter, name):
        item = (span.attributes or {}).get(ITEM)
        if item is not None:
            assert item not in found, f"two {name} spans carry {item}"
            found[item] = span
    return found


def _holding_module() -> Any:
    """Where the hold's length is set: the extension's, or upstream's with the series
    applied (patches/, 0011: the same name)."""
    if _STATE == "patched":
        from livekit_ext.utterance_traces import spans

        return spans
    import importlib

    return importlib.import_module("livekit.agents.voice._utterance_spans")


def _linked_items(span: Any) -> list[str]:
    return [link.attributes[ITEM] for link in span.links]


async def test_a_late_transcript_lands_on_its_own_utterances_span(
    openai_realtime_server: OpenAIRealtimeServer, spans: Any
) -> None:
    """A's transcript arrives after B began: it is on A's user_speaking, not on B's (open when
    it arrives); each span keeps upstream's own end time, and the answer links to B."""
    server = openai_realtime_server
    async with openai_realtime_session(server) as (session, rec):
        rec.watch_utterances(session)
        await server.send(oai.speech_started("item_A", 100), oai.speech_stopped("item_A", 900))
        await asyncio.sleep(0.2)
        await server.send(oai.speech_started("item_B", 1200))
        await asyncio.sleep(0.1)
        await server.send(oai.transcription_completed("item_A", "hello"))
        await asyncio.sleep(0.1)
        await server.send(oai.speech_stopped("item_B", 1800))
        await server.send(oai.transcription_completed("item_B", "bye"))
        await rec.wait_for_finals(2)
        await server.send(*oai.assistant_reply("resp_1", "item_reply", "Goodbye."))
        await asyncio.sleep(0.3)
    users = _by_item(spans, "user_speaking")
    assert set(users) == {"item_A", "item_B"}
    a, b = users["item_A"], users["item_B"]
    assert a.attributes[TEXT] == "hello" and b.attributes[TEXT] == "bye"
    assert a.end_time <= b.start_time  # held for its transcript, ended as upstream asked
    views = {u.item_id: u for name, u in rec.utterances if name == "utterance_final"}
    for item, span in users.items():
        attrs = span.attributes
        assert attrs["lk.utterance.source"] == "realtime"
        assert attrs["lk.utterance.speech_started_at"] == views[item].speech_started_at
        assert attrs["lk.utterance.speech_stopped_at"] == views[item].speech_stopped_at
        assert attrs["lk.utterance.speech_stopped_by"] == "provider"
    answers = [s for s in _named(spans, "agent_turn") if (s.attributes or {}).get(ITEM)]
    assert answers, "no agent_turn carries the item it answers"
    for answer in answers:
        assert answer.attributes[ITEM] == "item_B"
        assert answer.attributes["gen_ai.response.id"] == "resp_1"
        assert _linked_items(answer) == ["item_B"]
        assert answer.links[0].context.span_id == b.context.span_id


async def test_a_transcript_later_than_the_hold_gets_its_own_child_span(
    openai_realtime_server: OpenAIRealtimeServer, spans: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_holding_module(), "HOLD_SECONDS", 0.1)
    server = openai_realtime_server
    async with openai_realtime_session(server) as (_session, rec):
        await server.send(oai.speech_started("item_A", 100), oai.speech_stopped("item_A", 900))
        await asyncio.sleep(0.4)
        assert "item_A" in _by_item(spans, "user_speaking")  # exported once the hold ran out
        await server.send(oai.transcription_completed("item_A", "late"))
        await rec.wait_for_finals(1)
        await asyncio.sleep(0.1)
    user = _by_item(spans, "user_speaking")["item_A"]
    assert TEXT not in user.attributes
    (child,) = _named(spans, "user_transcript")
    assert child.parent.span_id == user.context.span_id
    assert child.attributes[ITEM] == "item_A" and child.attributes[TEXT] == "late"


async def test_gemini_with_voice_activity(gemini_live_server: GeminiLiveServer, spans: Any) -> None:
    server = gemini_live_server
    async with gemini_realtime_session(server) as (session, rec):
        rec.watch_utterances(session)
        await server.send(gem.voice_activity_start())
        await server.send(gem.input_transcription("book a table"))
        await asyncio.sleep(0.2)
        await server.send(gem.voice_activity_end())
        await server.send(gem.output_transcription("Sure."))
        await asyncio.sleep(0.1)
        await server.send(gem.generation_complete(), gem.turn_complete())
        await rec.wait_for_finals(1)
        await asyncio.sleep(0.2)
    item = rec.finals[0].item_id
    user = _by_item(spans, "user_speaking")[item]
    assert user.attributes[TEXT] == "book a table"
    assert user.attributes["lk.utterance.speech_stopped_by"] == "provider"
    stopped = next(u for n, u in rec.utterances if n == "utterance_stopped")
    assert user.attributes["lk.utterance.speech_stopped_at"] == stopped.speech_stopped_at
    answers = [s for s in _named(spans, "agent_turn") if (s.attributes or {}).get(ITEM)]
    assert answers and all(_linked_items(a) == [item] for a in answers)


async def test_gemini_without_voice_activity(
    gemini_live_server: GeminiLiveServer, spans: Any
) -> None:
    """No voiceActivity: the span is claimed by the first transcript, stops when the model
    answers, and gets the final at turn end."""
    server = gemini_live_server
    async with gemini_realtime_session(server) as (session, rec):
        rec.watch_utterances(session)
        await server.send(gem.input_transcription("book a table"))
        await asyncio.sleep(0.2)
        await server.send(gem.output_transcription("Sure."))
        await asyncio.sleep(0.1)
        await server.send(gem.generation_complete(), gem.turn_complete())
        await rec.wait_for_finals(1)
        await asyncio.sleep(0.2)
    item = rec.finals[0].item_id
    user = _by_item(spans, "user_speaking")[item]
    assert user.attributes[TEXT] == "book a table"
    assert user.attributes["lk.utterance.speech_stopped_by"] == "generation"
    answers = [s for s in _named(spans, "agent_turn") if (s.attributes or {}).get(ITEM)]
    assert answers and all(_linked_items(a) == [item] for a in answers)


async def test_an_stt_pipeline_turn_carries_its_id_and_the_reply_links_to_it(
    spans: Any,
) -> None:
    from livekit.agents import AgentSession

    from livekit_ext.testing.audio import PacedAudioInput
    from livekit_ext.testing.llm import ScriptedLLM
    from livekit_ext.testing.sessions import running_session
    from livekit_ext.testing.stt import Say, ScriptedSTT

    script = [
        Say(at=0.2, kind="start", text=""),
        Say(at=0.5, kind="interim", text="good"),
        Say(at=0.7, kind="final", text="good morning"),
        Say(at=0.8, kind="end", text=""),
    ]
    session: AgentSession[Any] = AgentSession(
        stt=ScriptedSTT(script), llm=ScriptedLLM(), turn_detection="stt"
    )
    async with running_session(session, audio=PacedAudioInput()) as rec:
        await rec.wait_for(lambda: bool(rec.messages("user")), timeout=10, what="the turn")
        await asyncio.sleep(0.5)
    item = rec.messages("user")[0].id
    turn = _by_item(spans, "user_turn")[item]
    assert turn.attributes["lk.utterance.source"] == "stt"
    assert turn.attributes["lk.utterance.speech_started_at"] is not None
    assert turn.attributes["lk.utterance.speech_stopped_by"] in ("stt", "final")
    user = _by_item(spans, "user_speaking")[item]
    assert user.parent.span_id == turn.context.span_id
    assert TEXT not in user.attributes  # an STT turn's text is upstream's, on user_turn
    answers = [s for s in _named(spans, "agent_turn") if (s.attributes or {}).get(ITEM)]
    assert answers and answers[0].attributes[ITEM] == item
    assert answers[0].links[0].context.span_id == turn.context.span_id


def _allows_pii_switch() -> bool:
    from livekit.agents import telemetry

    return "allow_pii" in inspect.signature(telemetry.set_tracer_provider).parameters


@pytest.mark.skipif(not _allows_pii_switch(), reason="this release has no in-process redaction")
async def test_the_transcript_is_redacted_exactly_as_livekits_own(
    openai_realtime_server: OpenAIRealtimeServer,
) -> None:
    server = openai_realtime_server
    with recording_spans(allow_pii=False) as exporter:
        async with openai_realtime_session(server) as (_session, rec):
            await server.send(oai.speech_started("item_A", 100), oai.speech_stopped("item_A", 900))
            await server.send(oai.transcription_completed("item_A", "my secret"))
            await rec.wait_for_finals(1)
            await asyncio.sleep(0.1)
    user = _by_item(exporter, "user_speaking")["item_A"]
    assert user.attributes[ITEM] == "item_A"
    for span in exporter.get_finished_spans():
        assert not [k for k in (span.attributes or {}) if k.startswith("lk.pii.")], span.name


@pytest.mark.skipif(not _allows_pii_switch(), reason="this release has no in-process redaction")
async def test_a_project_that_mandates_redaction_gets_ours_redacted_too(
    openai_realtime_server: OpenAIRealtimeServer,
) -> None:
    """PII allowed by the integrator, but the project mandates redaction (LiveKit stamps
    ``lk.redaction.enabled`` on every span): LiveKit drops every lk.pii.* attribute, ours too."""
    server = openai_realtime_server
    metadata = {"lk.redaction.enabled": True}
    with recording_spans(allow_pii=True, metadata=metadata) as exporter:
        async with openai_realtime_session(server) as (_session, rec):
            await server.send(oai.speech_started("item_A", 100), oai.speech_stopped("item_A", 900))
            await server.send(oai.transcription_completed("item_A", "my secret"))
            await rec.wait_for_finals(1)
            await asyncio.sleep(0.1)
    user = _by_item(exporter, "user_speaking")["item_A"]
    assert TEXT not in user.attributes and user.attributes[ITEM] == "item_A"


@pytest.mark.skipif(_allows_pii_switch(), reason="this release redacts in process")
async def test_before_1_8_the_transcript_is_under_the_pii_name_for_the_collector(
    openai_realtime_server: OpenAIRealtimeServer, spans: Any
) -> None:
    """LiveKit has no in-process redaction before 1.8 (1.7's Cloud collector strips lk.pii.*):
    the text is exported under the lk.pii. name, never a plain one."""
    server = openai_realtime_server
    async with openai_realtime_session(server) as (_session, rec):
        await server.send(oai.speech_started("item_A", 100), oai.speech_stopped("item_A", 900))
        await server.send(oai.transcription_completed("item_A", "my words"))
        await rec.wait_for_finals(1)
        await asyncio.sleep(0.1)
    user = _by_item(spans, "user_speaking")["item_A"]
    texts = [k for k, v in user.attributes.items() if v == "my words"]
    assert texts == [TEXT]


@extension_hooks
def test_without_a_tracer_provider_no_per_event_hook_is_installed() -> None:
    from livekit.agents import telemetry

    from livekit_ext.utterance_traces import hooks_installed

    livekit_ext.revert()
    livekit_ext.apply()
    assert not hasattr(telemetry.tracer._tracer_provider, "add_span_processor")
    assert hooks_installed() == []
    assert "nothing runs" in livekit_ext.status()["utterance_traces"].reason
    with recording_spans():
        assert "AgentSession._update_user_state" in hooks_installed()
        assert "records" in livekit_ext.status()["utterance_traces"].reason


@extension_hooks
async def test_held_spans_are_bounded_and_end_at_session_close(
    openai_realtime_server: OpenAIRealtimeServer, spans: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Utterances whose transcript never comes: at most MAX_HELD spans wait (the oldest ends
    first, with its identity and no text), and closing the session ends the rest."""
    from livekit_ext.utterance_traces import spans as utterance_traces

    monkeypatch.setattr(utterance_traces, "MAX_HELD", 2)
    server = openai_realtime_server
    async with openai_realtime_session(server) as (session, _rec):
        for n in range(4):
            await server.send(oai.speech_started(f"item_{n}"), oai.speech_stopped(f"item_{n}"))
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.1)
        book = session._livekit_ext_span_book
        assert len(book.held) == 2
        assert set(_by_item(spans, "user_speaking")) == {"item_0", "item_1"}
    users = _by_item(spans, "user_speaking")
    assert set(users) == {f"item_{n}" for n in range(4)}
    assert all(TEXT not in span.attributes for span in users.values())
    assert all(
        span.attributes["lk.utterance.speech_stopped_by"] == "provider" for span in users.values()
    )


@extension_hooks
async def test_a_failing_span_never_reaches_the_session(
    openai_realtime_server: OpenAIRealtimeServer,
    spans: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from opentelemetry.sdk.trace import Span

    original = Span.set_attributes

    def broken(self: Any, attributes: Any) -> None:
        if ITEM in attributes:  # ours only: upstream's own calls go through
            raise RuntimeError("exporter bug")
        original(self, attributes)

    monkeypatch.setattr(Span, "set_attributes", broken)
    server = openai_realtime_server
    async with openai_realtime_session(server) as (_session, rec):
        await server.send(oai.speech_started("item_A"), oai.speech_stopped("item_A"))
        await server.send(oai.transcription_completed("item_A", "hello"))
        await rec.wait_for_finals(1)
        await asyncio.sleep(0.1)
    assert [e.transcript for e in rec.finals] == ["hello"]
    assert "user_speaking" in {s.name for s in spans.get_finished_spans()}  # still ended
    assert "livekit_ext:" in caplog.text
