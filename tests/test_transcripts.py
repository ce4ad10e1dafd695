"""``transcripts(session)`` and the session-start warning, through the public API and real
AgentSessions over the OpenAI loopback server."""

from __future__ import annotations

import os
from typing import Any

import pytest

import livekit_ext
from livekit_ext import identity
from livekit_ext.testing import OpenAIRealtimeServer
from livekit_ext.testing import openai_server as oai
from livekit_ext.testing.sessions import openai_realtime_session

pytestmark = pytest.mark.wire
EXTENSION_DISABLED = os.environ.get("LIVEKIT_EXT_DISABLE") == "1"
IDENTITY_FIELDS = ("item_id", "speech_started_at", "source")


def _warnings(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


def _fields_upstream_declares() -> set[str]:
    """The identity fields the installed release's event class declares by itself."""
    from livekit.agents.voice.events import UserInputTranscribedEvent

    livekit_ext.revert()  # the class as upstream ships it
    try:
        return set(UserInputTranscribedEvent.model_fields) & set(IDENTITY_FIELDS)
    finally:
        livekit_ext.apply()


@pytest.mark.skipif(EXTENSION_DISABLED, reason="exercises the extension itself")
async def test_the_started_before_warning_names_the_fields_this_release_lacks(
    openai_realtime_server: OpenAIRealtimeServer, caplog: pytest.LogCaptureFixture
) -> None:
    """On 1.8.9 ``item_id`` is native (upstream fills it even unpatched): the warning names
    only ``speech_started_at/source``; on a release before 1.6.6 it names all three."""
    native = _fields_upstream_declares()
    lacking = [f for f in IDENTITY_FIELDS if f not in native]
    server = openai_realtime_server
    livekit_ext.revert()
    async with openai_realtime_session(server) as (session, rec):
        livekit_ext.apply()
        with caplog.at_level("WARNING", logger="livekit_ext"):
            await server.send(
                oai.speech_started("item_A"), oai.transcription_completed("item_A", "x")
            )
            await rec.wait_for_finals(1)
    (warning,) = _warnings(caplog, "before livekit_ext")
    assert f"AgentSession {id(session):#x} was started before" in warning
    assert f"transcripts carry no {'/'.join(lacking)} (" in warning, warning
    for field in native:
        assert field not in warning.partition("carry no")[2].partition("(")[0], warning
    if "item_id" in native:  # the warning's claim, checked against what arrived
        assert identity(rec.finals[0]).item_id == "item_A"
        assert "speech_started_at/source" in warning


async def test_transcripts_of_a_session_never_started_warns_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from livekit.agents import AgentSession

    session: AgentSession[Any] = AgentSession()
    with caplog.at_level("WARNING", logger="livekit_ext"):
        for _ in range(3):  # a tool that polls: one warning per session, not per call
            assert livekit_ext.transcripts(session).latest() is None
        livekit_ext.transcripts(AgentSession())  # another session: its own warning
    warnings = _warnings(caplog, "is not started")
    assert len(warnings) == 2, warnings
    assert f"AgentSession {id(session):#x} is not started" in warnings[0]
    assert "records from session.start() on" in warnings[0]


async def test_enabling_parallel_stt_before_start_is_not_reading_an_unstarted_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The README enables parallel STT before ``session.start()``: the package's own use of
    the log is not a user reading an empty one."""
    from livekit.agents import AgentSession

    session: AgentSession[Any] = AgentSession()
    with caplog.at_level("WARNING", logger="livekit_ext"):
        livekit_ext.enable_parallel_stt(session)
    assert not _warnings(caplog, "is not started")


async def test_transcripts_of_a_started_or_closed_session_does_not_warn_it_is_not_started(
    openai_realtime_server: OpenAIRealtimeServer, caplog: pytest.LogCaptureFixture
) -> None:
    server = openai_realtime_server
    with caplog.at_level("WARNING", logger="livekit_ext"):
        async with openai_realtime_session(server) as (session, rec):
            livekit_ext.transcripts(session)
            await server.send(
                oai.speech_started("item_A"), oai.transcription_completed("item_A", "x")
            )
            await rec.wait_for_finals(1)
        log = livekit_ext.transcripts(session)  # read after the session closed
    assert not _warnings(caplog, "is not started")
    assert [e.transcript for e in log] == ["x"]


@pytest.mark.parametrize("source", ["sst", "STT", "", "both"])
async def test_an_unknown_source_is_an_error_naming_the_valid_ones(
    openai_realtime_server: OpenAIRealtimeServer, source: str
) -> None:
    server = openai_realtime_server
    async with openai_realtime_session(server) as (session, rec):
        log = livekit_ext.transcripts(session)  # before the transcript: extension on or off
        await server.send(oai.speech_started("item_A"), oai.transcription_completed("item_A", "x"))
        await rec.wait_for_finals(1)
        for read in (
            lambda: log.latest(source=source),  # type: ignore[arg-type]
            lambda: log.latest(source=source, final_only=False),  # type: ignore[arg-type]
            lambda: log.record(rec.finals[0], source=source),  # type: ignore[arg-type]
        ):
            with pytest.raises(ValueError) as raised:
                read()
            assert "'realtime', 'stt' or None" in str(raised.value)
            assert repr(source) in str(raised.value)
        assert len(log) == 1  # the rejected record() logged nothing
        if not EXTENSION_DISABLED:
            assert log.latest(source="realtime") is rec.finals[0]
        assert log.latest(source="stt") is None  # a valid source with nothing yet: None
