"""Live utterances on realtime plugins other than OpenAI and Gemini, each driven over a
loopback server where the plugin takes a URL. A plugin that is not installed is skipped."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

import livekit_ext
from livekit_ext import identity
from livekit_ext.testing import openai_server as oai
from livekit_ext.testing.openai_server import OpenAIRealtimeServer
from livekit_ext.testing.recorder import SessionRecorder
from livekit_ext.testing.sessions import running_session

pytestmark = pytest.mark.wire


def _watch(session: Any) -> list[tuple[str, str, str]]:
    """Every ``Utterances`` event of ``session``: (name, item id, transcript)."""
    utterances = livekit_ext.Utterances(session)
    calls: list[tuple[str, str, str]] = []
    for name in ("utterance_started", "utterance_updated", "utterance_stopped", "utterance_final"):
        utterances.on(name, lambda u, n=name: calls.append((n, u.item_id, u.transcript)))
    return calls  # the session keeps the view alive (it observes the session's emit)


@asynccontextmanager
async def xai_session(server: OpenAIRealtimeServer) -> AsyncIterator[tuple[Any, SessionRecorder]]:
    """The real xAI realtime plugin (an OpenAI-engine subclass) pointed at the OpenAI
    loopback server."""
    xai = pytest.importorskip("livekit.plugins.xai")
    model = xai.realtime.RealtimeModel(base_url=server.base_url, api_key="test")
    async with _session_on(server, model) as running:
        yield running


@asynccontextmanager
async def _session_on(
    server: Any, model: Any, *, handshake: str | None = "session.update"
) -> AsyncIterator[tuple[Any, SessionRecorder]]:
    """An AgentSession on ``model``, yielded once it connected (and sent ``handshake``)."""
    from livekit.agents import AgentSession

    session: AgentSession[Any] = AgentSession(llm=model)
    try:
        async with running_session(session) as recorder:
            await server.wait_for_connection(1)
            if handshake is not None:
                await server.wait_for_client_event(handshake)
            yield session, recorder
    finally:
        await model.aclose()


async def _speak_item_a(server: OpenAIRealtimeServer, rec: Any, calls: list[Any]) -> None:
    """``speech_started`` (the placeholder must be out before anything else is sent), then
    ``speech_stopped`` and the completed transcript "hello"."""
    await server.send(oai.speech_started("item_A", 0))
    await rec.wait_for(lambda: bool(calls), what="utterance_started")
    assert calls == [("utterance_started", "item_A", "")]
    await server.send(oai.speech_stopped("item_A", 900))
    await server.send(oai.transcription_completed("item_A", "hello"))


async def _one_openai_protocol_utterance(server: OpenAIRealtimeServer, model: Any) -> None:
    """One utterance over the OpenAI protocol: started, stopped and final, all ``item_A``."""
    async with _session_on(server, model) as (session, rec):
        calls = _watch(session)
        await _speak_item_a(server, rec, calls)
        await rec.wait_for_finals(1)
    assert [c for c in calls if c[0] != "utterance_updated"] == [
        ("utterance_started", "item_A", ""),
        ("utterance_stopped", "item_A", ""),
        ("utterance_final", "item_A", "hello"),
    ]
    assert [identity(e).item_id for e in rec.finals] == ["item_A"]


async def test_xai_item_id_speech_start_and_utterances(
    openai_realtime_server: OpenAIRealtimeServer,
) -> None:
    """xAI: item id and speech start from input_audio_buffer.speech_started (raw events of
    the OpenAI engine it subclasses). On 1.6.10, 1.7.1 and 1.8.9 the plugin emits its
    "completed" transcript as an interim and finalizes it only when the next speech starts or
    the model replies, so ``utterance_final`` fires then: the plugin's own moment of finality.
    On 1.4.6 and 1.5.17 "completed" is final at once, and so is the utterance."""
    server = openai_realtime_server
    async with xai_session(server) as (session, rec):
        calls = _watch(session)
        await _speak_item_a(server, rec, calls)
        await rec.wait_for(lambda: any(e.transcript for e in rec.transcripts), what="transcript")
        holds_the_final_back = not rec.finals
        if holds_the_final_back:
            await server.send(oai.speech_started("item_B", 2000))  # the next one flushes it
        await rec.wait_for_finals(1)
        await asyncio.sleep(0.05)
    assert {identity(e).item_id for e in rec.transcripts if e.transcript} == {"item_A"}
    assert all(identity(e).source == "realtime" for e in rec.transcripts)
    if not holds_the_final_back:
        assert calls == [
            ("utterance_started", "item_A", ""),
            ("utterance_stopped", "item_A", ""),
            ("utterance_final", "item_A", "hello"),
        ]
        return
    # B's start is signalled from the raw event, before the plugin's handler flushes A
    assert calls == [
        ("utterance_started", "item_A", ""),
        ("utterance_stopped", "item_A", ""),
        ("utterance_updated", "item_A", "hello"),
        ("utterance_started", "item_B", ""),
        ("utterance_final", "item_A", "hello"),
    ]


async def test_livekit_inference_realtime_item_id_and_speech_start(
    openai_realtime_server: OpenAIRealtimeServer,
) -> None:
    """LiveKit Inference realtime (livekit-agents 1.8+: an OpenAI-engine session speaking the
    OpenAI protocol) over the OpenAI loopback server: placeholder at speech start, final."""
    inference = pytest.importorskip("livekit.agents.inference.realtime.openai")
    server = openai_realtime_server
    model = inference.RealtimeModel(
        "openai/gpt-realtime", base_url=server.base_url, api_key="key", api_secret="s" * 32
    )
    await _one_openai_protocol_utterance(server, model)


async def test_azure_openai_speech_start_through_the_azure_path(
    openai_realtime_server: OpenAIRealtimeServer,
) -> None:
    """Azure OpenAI (``with_azure``, the GA v1 path of the loopback server): the same engine,
    so the same placeholder at ``speech_started`` and final."""
    openai = pytest.importorskip("livekit.plugins.openai")
    server = openai_realtime_server
    model = openai.realtime.RealtimeModel.with_azure(
        azure_deployment="gpt-realtime", azure_endpoint=server.azure_endpoint, api_key="test"
    )
    await _one_openai_protocol_utterance(server, model)
    assert server.connections[0].path == "/openai/v1/realtime"


async def test_azure_voice_live_item_id_and_speech_start_from_its_sdk_events(
    openai_realtime_server: OpenAIRealtimeServer,
) -> None:
    """Azure Voice Live (livekit-plugins-azure 1.8+, through the azure-ai-voicelive SDK, which
    speaks the OpenAI protocol on ``/voice-live/realtime``) over the OpenAI loopback server.
    The framework's ``input_speech_started`` it emits has no item id; its SDK events
    (``azure_server_event_received``) do: the placeholder comes at speech start with it."""
    azure = pytest.importorskip("livekit.plugins.azure")
    pytest.importorskip("livekit.plugins.azure.realtime")
    server = openai_realtime_server
    model = azure.realtime.RealtimeModel(
        endpoint=f"http://127.0.0.1:{server.port}", api_key="test", model="gpt-realtime"
    )
    await _one_openai_protocol_utterance(server, model)
    assert server.connections[0].path == "/voice-live/realtime"


def _generic_model() -> Any:
    """A realtime plugin with no provider-specific source: a minimal ``llm.RealtimeModel``
    whose session the test makes emit the framework's own events, as any plugin does (this
    stands in for plugins that cannot be reached over a loopback server here, e.g. AWS Nova
    Sonic, whose speech-stop interim has no item id)."""
    from livekit.agents import llm

    class Session(llm.RealtimeSession):  # type: ignore[misc]
        def __init__(self, model: Any) -> None:
            super().__init__(model)
            self._ctx = llm.ChatContext.empty()
            self._tools = llm.ToolContext.empty()

        @property
        def chat_ctx(self) -> Any:
            return self._ctx

        @property
        def tools(self) -> Any:
            return self._tools

        async def update_instructions(self, instructions: str) -> None: ...

        async def update_chat_ctx(self, chat_ctx: Any) -> None: ...

        async def update_tools(self, tools: Any) -> None: ...

        def update_options(self, **_: Any) -> None: ...

        def push_audio(self, frame: Any) -> None: ...

        def push_video(self, frame: Any) -> None: ...

        def generate_reply(self, **_: Any) -> Any:
            return asyncio.get_running_loop().create_future()

        def commit_audio(self) -> None: ...

        def clear_audio(self) -> None: ...

        def interrupt(self) -> None: ...

        def truncate(self, **_: Any) -> None: ...

        async def aclose(self) -> None: ...

    # livekit-agents 1.5.2 alone has this flag without a default
    flags = {f.name for f in dataclasses.fields(llm.RealtimeCapabilities)}
    extra = {"per_response_tool_choice": False} if "per_response_tool_choice" in flags else {}

    class Model(llm.RealtimeModel):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(
                capabilities=llm.RealtimeCapabilities(
                    message_truncation=False,
                    turn_detection=True,
                    user_transcription=True,
                    auto_tool_reply_generation=False,
                    audio_output=False,
                    manual_function_calls=False,
                    **extra,
                )
            )
            self.sessions: list[Any] = []

        def session(self, **_: Any) -> Any:
            self.sessions.append(Session(self))
            return self.sessions[-1]

        async def aclose(self) -> None: ...

    return Model()


async def test_any_realtime_plugin_speech_stop_stops_the_utterance_and_its_interim_gets_the_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The framework's own ``input_speech_started``/``input_speech_stopped`` of any realtime
    session: no item id at the start, so ``utterance_started`` comes with the first
    transcript; the stop stops the utterance, and the framework's empty interim at the stop
    gets the id of the transcripts since the start (the stop names no item, like Nova
    Sonic's)."""
    import logging

    from livekit.agents import AgentSession, llm

    model = _generic_model()
    session: AgentSession[Any] = AgentSession(llm=model)
    with caplog.at_level(logging.WARNING, logger="livekit_ext"):
        async with running_session(session) as rec:
            calls = _watch(session)
            rt = model.sessions[-1]
            rt.emit("input_speech_started", llm.InputSpeechStartedEvent())
            rt.emit(
                "input_audio_transcription_completed",
                llm.InputTranscriptionCompleted(item_id="u1", transcript="hi", is_final=False),
            )
            rt.emit(
                "input_speech_stopped", llm.InputSpeechStoppedEvent(user_transcription_enabled=True)
            )
            rt.emit(
                "input_audio_transcription_completed",
                llm.InputTranscriptionCompleted(item_id="u1", transcript="hi there", is_final=True),
            )
            await rec.wait_for_finals(1)
    assert calls == [
        ("utterance_started", "u1", ""),
        ("utterance_updated", "u1", "hi"),
        ("utterance_stopped", "u1", "hi"),
        ("utterance_final", "u1", "hi there"),
    ]
    # the framework's empty interim at the stop too: its speech is u1's
    assert [(e.transcript, identity(e).item_id) for e in rec.transcripts] == [
        ("hi", "u1"),
        ("", "u1"),
        ("hi there", "u1"),
    ]
    assert "is livekit_ext applied" not in caplog.text


async def test_ultravox_item_id_source_and_utterances_over_its_call_protocol() -> None:
    """Ultravox (``POST /calls`` then the call's websocket, as a loopback server): the plugin
    names a user utterance ``msg_user_<ordinal>`` and emits no speech start of its own before
    the transcript, so ``utterance_started`` comes with the first transcript. Its
    ``input_speech_stopped`` comes at state ``speaking``, after the final: the utterance has
    stopped by then (its final says so, just before ``utterance_final``), once."""
    pytest.importorskip("livekit.plugins.ultravox")
    import aiohttp

    from livekit_ext.testing.ultravox_server import UltravoxServer, state, user_transcript

    async with UltravoxServer() as server, aiohttp.ClientSession() as http:
        model = server.realtime_model(http_session=http)
        async with _session_on(server, model, handshake=None) as (session, rec):
            calls = _watch(session)
            await server.send(user_transcript(1, "book a", final=False))
            await server.send(user_transcript(1, "book a table", final=True))
            await rec.wait_for_finals(1)
            await server.send(state("thinking"), state("speaking"))
            await rec.wait_for(lambda: len(calls) >= 4, what="utterance_stopped")
    assert {identity(e).item_id for e in rec.transcripts} == {"msg_user_1"}
    assert {identity(e).source for e in rec.transcripts} == {"realtime"}
    assert calls == [
        ("utterance_started", "msg_user_1", ""),
        ("utterance_updated", "msg_user_1", "book a"),
        ("utterance_stopped", "msg_user_1", "book a"),
        ("utterance_final", "msg_user_1", "book a table"),
    ]


async def test_phonic_recorded_messages_through_the_plugins_own_handlers(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Phonic's SDK takes no URL, so no loopback server: the connection task is replaced by
    one that connects nowhere, and recorded messages (user_started_speaking,
    user_finished_speaking, input_text) go through the plugin's own handlers, as its receive
    loop dispatches them. The plugin names the utterance only with its single final
    (``PI_...``) and marks the speech stop as transcribed (an empty interim without id)."""
    import logging

    phonic = pytest.importorskip("livekit.plugins.phonic")
    from livekit.agents import AgentSession
    from phonic.types import InputTextPayload

    async def connects_nowhere(self: Any) -> None:
        await self._session_should_close.wait()

    monkeypatch.setattr(phonic.realtime.RealtimeSession, "_main_task", connects_nowhere)
    model = phonic.realtime.RealtimeModel(api_key="test")
    session: AgentSession[Any] = AgentSession(llm=model)
    with caplog.at_level(logging.WARNING, logger="livekit_ext"):
        async with running_session(session) as rec:
            calls = _watch(session)
            rt = session._activity._rt_session  # type: ignore[union-attr]
            rt._handle_input_speech_started()  # "user_started_speaking"
            rt._handle_input_speech_stopped()  # "user_finished_speaking"
            rt._handle_input_text(InputTextPayload(language="en", text="call me later"))
            await rec.wait_for_finals(1)
    item = identity(rec.finals[0]).item_id
    assert item is not None and item.startswith("PI_")
    assert identity(rec.finals[0]).source == "realtime"
    assert calls == [
        ("utterance_started", item, ""),
        ("utterance_stopped", item, ""),
        ("utterance_final", item, "call me later"),
    ]
    assert "is livekit_ext applied" not in caplog.text


def _bedrock(event: dict[str, Any]) -> dict[str, Any]:
    return {"event": event}


async def test_aws_nova_sonic_recorded_events_through_the_plugins_own_handlers(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """AWS Nova Sonic signs its requests (SigV4) for a regional Bedrock endpoint, so no
    loopback server: the stream setup is replaced by one that connects nowhere, and recorded
    Bedrock output events (the user's ASR text, then the assistant's speculative text) go
    through the plugin's own ``_handle_event`` and turn tracker, as its response loop feeds
    them. Its speech start has no id: ``utterance_started`` comes with the first partial,
    which carries the turn's id. Its realtime SDK needs Python >= 3.12."""
    import logging

    pytest.importorskip("aws_sdk_bedrock_runtime")
    realtime = pytest.importorskip("livekit.plugins.aws.experimental.realtime")
    from livekit.agents import AgentSession

    async def connects_nowhere(self: Any, is_restart: bool = False) -> None:
        await asyncio.Event().wait()

    monkeypatch.setattr(realtime.RealtimeSession, "initialize_streams", connects_nowhere)
    model = realtime.RealtimeModel(region="us-east-1")
    session: AgentSession[Any] = AgentSession(llm=model)
    with caplog.at_level(logging.WARNING, logger="livekit_ext"):
        async with running_session(session) as rec:
            calls = _watch(session)
            rt = session._activity._rt_session  # type: ignore[union-attr]
            user = {"role": "USER", "contentId": "user-1"}
            for event in (
                {"contentStart": {**user, "type": "TEXT"}},
                {"textOutput": {**user, "content": "book a"}},
                {"textOutput": {**user, "content": "table"}},
                {
                    "contentStart": {
                        "role": "ASSISTANT",
                        "type": "TEXT",
                        "contentId": "assistant-1",
                        "additionalModelFields": '{"generationStage":"SPECULATIVE"}',
                    }
                },
            ):
                await rt._handle_event(_bedrock(event))
            await rec.wait_for_finals(1)
            await asyncio.sleep(0.05)
    item = identity(rec.finals[0]).item_id
    assert item is not None
    # every transcript carries the turn's id, the framework's empty interim at the stop too
    assert {identity(e).item_id for e in rec.transcripts} == {item}
    assert identity(rec.finals[0]).source == "realtime"
    assert rec.finals[0].transcript == "book a table"
    assert calls == [
        ("utterance_started", item, ""),
        ("utterance_updated", item, "book a"),
        ("utterance_updated", item, "book a table"),
        ("utterance_stopped", item, "book a table"),
        ("utterance_final", item, "book a table"),
    ]
    assert "is livekit_ext applied" not in caplog.text
