"""Transcript identity in an STT pipeline: one id per user turn, shared with its ChatMessage."""

from __future__ import annotations

import pytest
from livekit.agents import AgentSession

from livekit_ext import identity
from livekit_ext.testing.audio import PacedAudioInput
from livekit_ext.testing.llm import ScriptedLLM
from livekit_ext.testing.sessions import running_session
from livekit_ext.testing.stt import Say, ScriptedSTT

pytestmark = pytest.mark.wire

TWO_TURNS = [
    Say(0.2, "start"),
    Say(0.4, "interim", "my number"),
    Say(0.6, "final", "my number is"),
    Say(0.8, "interim", "four"),
    Say(1.0, "final", "four seven"),
    Say(1.1, "end"),
    Say(3.0, "start"),
    Say(3.2, "final", "thanks"),
    Say(3.3, "end"),
]


async def test_two_finals_in_one_turn_share_the_id_of_the_committed_user_message() -> None:
    session: AgentSession = AgentSession(stt=ScriptedSTT(TWO_TURNS), llm=ScriptedLLM())
    async with running_session(session, audio=PacedAudioInput(speed=2.0)) as rec:
        await rec.wait_for(lambda: len(rec.messages("user")) >= 2, timeout=15, what="2 turns")

    first_turn = [
        e
        for e in rec.transcripts
        if e.transcript in ("my number", "my number is", "four", "four seven")
    ]
    assert len(first_turn) == 4
    turn_ids = {identity(e).item_id for e in first_turn}
    assert len(turn_ids) == 1 and None not in turn_ids
    (turn_id,) = turn_ids
    user_messages = rec.messages("user")
    assert user_messages[0].id == turn_id
    assert user_messages[0].text_content == "my number is four seven"

    second = [e for e in rec.transcripts if e.transcript == "thanks"]
    assert identity(second[0]).item_id == user_messages[1].id != turn_id
    assert {identity(e).source for e in rec.transcripts} == {"stt"}

    starts = {identity(e).speech_started_at for e in first_turn}
    assert len(starts) == 1
    (start,) = starts
    assert start is not None and all(start <= e.created_at for e in first_turn)
    assert identity(second[0]).speech_started_at > start  # type: ignore[operator]


async def test_an_interim_and_a_final_without_vad_use_the_first_transcript_as_start() -> None:
    script = [Say(0.3, "interim", "hel"), Say(0.5, "final", "hello"), Say(0.6, "end")]
    session: AgentSession = AgentSession(stt=ScriptedSTT(script), llm=ScriptedLLM())
    async with running_session(session, audio=PacedAudioInput(speed=2.0)) as rec:
        await rec.wait_for(lambda: len(rec.messages("user")) >= 1, timeout=10, what="a turn")

    interim, final = rec.transcripts[0], rec.finals[0]
    assert identity(interim).item_id == identity(final).item_id == rec.messages("user")[0].id
    assert (
        identity(interim).speech_started_at
        == identity(final).speech_started_at
        == interim.created_at
    )
