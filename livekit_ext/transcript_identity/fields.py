"""The three identity fields on ``UserInputTranscribedEvent``, added where a release lacks them."""

from __future__ import annotations

from typing import Any, Literal

from .. import _touchpoints as tp
from .._wrapping import Patcher

FIELD_NAMES = ("item_id", "speech_started_at", "source")

EVENT = tp.read(
    "the event that gains the identity fields",
    "livekit.agents.voice.events:UserInputTranscribedEvent",
)


def event_class() -> Any:
    return EVENT.get(importing=True)


def missing_fields() -> list[str]:
    return [name for name in FIELD_NAMES if name not in event_class().__pydantic_fields__]


def _new_fields() -> dict[str, Any]:
    """The three fields, as pydantic ``FieldInfo`` (built when installed: pydantic is
    livekit's import to pay, not ours)."""
    from pydantic.fields import FieldInfo

    return {
        "item_id": FieldInfo(
            annotation=str | None,  # type: ignore[arg-type]
            default=None,
            description="One stable key per user utterance, shared by its interims and final.",
        ),
        "speech_started_at": FieldInfo(
            annotation=float | None,  # type: ignore[arg-type]
            default=None,
            description="Wall-clock time (time.time()) at which the user began this utterance.",
        ),
        "source": FieldInfo(
            annotation=Literal["realtime", "stt"] | None,  # type: ignore[arg-type]
            default=None,
            description="Which engine produced the transcript: the realtime model or an STT.",
        ),
    }


def add_fields(patcher: Patcher) -> list[str]:
    """Add the fields the event lacks (undone with the patcher); returns their names."""
    cls = event_class()
    original = cls.__pydantic_fields__
    added = missing_fields()
    new_fields = _new_fields()
    fields = {**original, **{name: new_fields[name] for name in added}}

    def rebuild(with_fields: dict[str, Any]) -> None:
        cls.__pydantic_fields__ = with_fields
        cls.model_rebuild(force=True)
        # pydantic >= 2.11 memoizes a setattr handler per attribute name on the class;
        # one memoized while our fields existed would keep accepting them after revert
        handlers = vars(cls).get("__pydantic_setattr_handlers__")
        if isinstance(handlers, dict):
            handlers.clear()

    patcher.on_undo(lambda: rebuild(original))
    rebuild(fields)
    return added
