"""The documented pattern: a handler reading the identity fields, type-checked by mypy."""

from __future__ import annotations

from livekit.agents import AgentSession
from livekit.agents.voice.events import UserInputTranscribedEvent

import livekit_ext
from livekit_ext import identity

seen: set[str] = set()


def on_transcribed(ev: UserInputTranscribedEvent) -> None:
    key = identity(ev)
    item_id: str | None = key.item_id
    started: float | None = key.speech_started_at
    source: livekit_ext.Source | None = key.source
    if item_id is not None and item_id not in seen:
        seen.add(item_id)
        print(item_id, started, source, ev.transcript)


def on_final(u: livekit_ext.Utterance) -> None:
    started: float | None = u.speech_started_at
    print(u.item_id.upper(), started, u.transcript, u.final)


def attach(session: AgentSession) -> livekit_ext.Utterances:  # type: ignore[type-arg]
    session.on("user_input_transcribed", on_transcribed)
    utterances = livekit_ext.Utterances(session)
    utterances.on("utterance_final", on_final)
    return utterances
