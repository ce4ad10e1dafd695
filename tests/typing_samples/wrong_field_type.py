"""Must NOT type-check: the identity fields have real types, not Any."""

from __future__ import annotations

from livekit.agents.voice.events import UserInputTranscribedEvent

from livekit_ext import identity


def on_transcribed(ev: UserInputTranscribedEvent) -> int:
    return identity(ev).speech_started_at  # float | None is not int
