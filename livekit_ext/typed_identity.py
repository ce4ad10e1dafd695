"""A typed view of the identity fields, for handlers that must type-check on every release.

On livekit-agents < 1.6.6 ``UserInputTranscribedEvent`` declares no ``item_id`` and no release
declares ``speech_started_at`` or ``source``, so ``ev.speech_started_at`` fails under mypy even
though the attribute is there at run time. ``identity(ev)`` reads them with their real types::

    from livekit_ext import identity

    @session.on("user_input_transcribed")
    def on_transcribed(ev: UserInputTranscribedEvent) -> None:
        key = identity(ev)
        if key.item_id is not None and key.speech_started_at is not None: ...
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

Source = Literal["realtime", "stt"]


class Identity(NamedTuple):
    item_id: str | None
    speech_started_at: float | None
    source: Source | None


def identity(ev: Any) -> Identity:
    """The utterance identity of a ``UserInputTranscribedEvent`` (None where unknown)."""
    source = getattr(ev, "source", None)
    return Identity(
        item_id=getattr(ev, "item_id", None),
        speech_started_at=getattr(ev, "speech_started_at", None),
        source=source if source in ("realtime", "stt") else None,
    )
