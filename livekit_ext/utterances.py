"""``Utterances(session)``: one started / updated / final per user utterance, for dedup handlers.

Providers repeat themselves (a second ``...transcription.completed``), send deltas after the
final, and emit an empty interim when speech stops; a handler that must act once per
utterance listens here instead of to ``user_input_transcribed``.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Literal

from livekit import rtc

from ._observe import observe_before_listeners
from .identity import Source, identity

logger = logging.getLogger("livekit_ext")

UtteranceEventName = Literal["utterance_started", "utterance_updated", "utterance_final"]


@dataclass(frozen=True)
class Utterance:
    """The state of one user utterance when an ``utterance_*`` event fires."""

    item_id: str
    speech_started_at: float | None
    transcript: str
    source: Source | None
    final: bool
    event: Any
    """The ``UserInputTranscribedEvent`` that caused this callback."""


@dataclass
class _Item:
    transcript: str = ""
    final: bool = False


class Utterances(rtc.EventEmitter[UtteranceEventName]):
    """Per-utterance view of one ``AgentSession``'s ``user_input_transcribed`` events.

    ``source`` restricts the view to one engine (with a parallel STT both engines report the
    same utterance). At most ``max_items`` utterances are remembered; older ones are forgotten,
    so a repeat of a long-gone utterance could fire again, never a recent one.
    """

    def __init__(
        self, session: Any, *, source: Source | None = None, max_items: int = 1024
    ) -> None:
        super().__init__()
        if max_items < 1:
            raise ValueError("max_items must be at least 1")
        self._session = session
        self._source = source
        self._max_items = max_items
        self._items: OrderedDict[str, _Item] = OrderedDict()
        self._missing_id_logged = False
        self._closed = False
        observe_before_listeners(session, "user_input_transcribed", self._on_transcribed)

    def close(self) -> None:
        """Stop observing the session."""
        self._closed = True

    def _on_transcribed(self, ev: Any) -> None:
        if self._closed:
            return
        try:
            self._handle(ev)
        except Exception:
            logger.exception("livekit_ext.Utterances: failed to handle a transcript event")

    def _handle(self, ev: Any) -> None:
        ident = identity(ev)
        if self._source is not None and ident.source != self._source:
            return
        if ident.item_id is None:
            if not self._missing_id_logged:
                self._missing_id_logged = True
                logger.warning(
                    "livekit_ext.Utterances: user_input_transcribed without item_id ignored "
                    "(is livekit_ext applied? see livekit_ext.status())"
                )
            return
        item = self._items.get(ident.item_id)
        if item is None:
            item = self._items[ident.item_id] = _Item()
            while len(self._items) > self._max_items:
                self._items.popitem(last=False)
            self._emit("utterance_started", ident.item_id, item, ev)
        if item.final:
            logger.debug(
                "livekit_ext.Utterances: %s after the final of %s ignored",
                "final" if ev.is_final else "interim",
                ident.item_id,
            )
            return
        if ev.is_final:
            item.transcript, item.final = ev.transcript, True
            self._emit("utterance_final", ident.item_id, item, ev)
        elif ev.transcript and ev.transcript != item.transcript:
            item.transcript = ev.transcript
            self._emit("utterance_updated", ident.item_id, item, ev)

    def _emit(self, name: UtteranceEventName, item_id: str, item: _Item, ev: Any) -> None:
        ident = identity(ev)
        self.emit(
            name,
            Utterance(
                item_id=item_id,
                speech_started_at=ident.speech_started_at,
                transcript=item.transcript,
                source=ident.source,
                final=item.final,
                event=ev,
            ),
        )
