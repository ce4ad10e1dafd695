"""Every scenario under tests/scenarios/, replayed through the real plugin and snapshotted.

The snapshot is the contract: the same file must hold on every release of the matrix, with
the extension applied and with the patch series applied instead.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from syrupy.assertion import SnapshotAssertion
from syrupy.extensions.json import JSONSnapshotExtension

from livekit_ext.testing.scenario import Scenario, run_scenario

pytestmark = pytest.mark.wire

SCENARIOS = sorted((Path(__file__).parent / "scenarios").glob("*.json"))


@pytest.fixture
def snapshot_json(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    return snapshot.with_defaults(extension_class=JSONSnapshotExtension)


def comparable(observed: dict[str, Any]) -> dict[str, Any]:
    """Project what releases genuinely differ on out of the snapshot.

    livekit-plugins-openai 1.4.6 ignores ``...input_audio_transcription.delta`` (it only
    forwards the completed transcript), later releases emit one interim per delta. The
    snapshot keeps the speech-stop interim and the finals, which every release emits; the
    per-delta interims are asserted per release in test_transcript_identity_openai.py.

    After a tool call, livekit-plugins-openai 1.4.6 re-sends ``{"tool_choice": "auto"}`` in a
    session.update of its own (later releases do not); such tool_choice-only updates are
    left out of the snapshot.

    ``Utterances`` fires ``utterance_updated`` per delta, so those are left out for OpenAI too.

    The OpenAI plugin before 1.8 commits the assistant's message to the chat context only
    once its audio was played out, which a session with no room never does; 1.8 commits it
    when the response is done. Assistant items are therefore left out for OpenAI scenarios.
    """
    events = [
        e
        for e in observed["user_input_transcribed"]
        if e["is_final"]
        or e["transcript"] == ""
        or e["source"] != "realtime"
        or observed.get("provider") == "gemini"
    ]
    items = [
        i
        for i in observed["conversation_items"]
        if i["role"] != "assistant" or observed.get("provider") == "gemini"
    ]
    result = {**observed, "user_input_transcribed": events, "conversation_items": items}
    if "utterances" in observed and observed.get("provider") == "openai":
        # the same 1.4.6 difference, seen through Utterances: no utterance_updated per delta
        result["utterances"] = [
            u for u in observed["utterances"] if u["event"] != "utterance_updated"
        ]
    if "session_updates" in observed:
        result["session_updates"] = [
            body for body in observed["session_updates"] if set(body) - {"type"} != {"tool_choice"}
        ]
    return result


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
async def test_scenario(
    path: Path, snapshot_json: SnapshotAssertion, caplog: pytest.LogCaptureFixture
) -> None:
    scenario = Scenario.load(path)
    with caplog.at_level(logging.WARNING):
        observed = await run_scenario(scenario)
    if (expected_log := scenario.expect.get("log")) is not None:
        assert expected_log in caplog.text  # bad input gets a log line that says what happened
    observed["provider"] = scenario.provider
    assert comparable(observed) == snapshot_json


async def test_a_stalled_machine_keeps_a_start_on_the_step_that_caused_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The event loop stalls 0.45 s right after the first step went out, so the client handles
    speech_started after the next steps were due (0.3 s, 0.5 s): the start still reads 0.0."""
    import asyncio
    import time

    from livekit_ext.testing.openai_server import OpenAIRealtimeServer

    send = OpenAIRealtimeServer.send
    sent: list[int] = []

    async def send_then_stall(self: Any, *events: Any, validate: bool = True) -> None:
        await send(self, *events, validate=validate)
        if not sent:
            asyncio.get_running_loop().call_soon(time.sleep, 0.45)  # before the client reads
        sent.append(len(events))

    monkeypatch.setattr(OpenAIRealtimeServer, "send", send_then_stall)
    scenario = Scenario.load(
        Path(__file__).parent / "scenarios" / "openai_single_utterance_with_deltas.json"
    )
    observed = await run_scenario(scenario)
    starts = {e["speech_started_at"] for e in observed["user_input_transcribed"]}
    assert sent and starts == {0.0}
