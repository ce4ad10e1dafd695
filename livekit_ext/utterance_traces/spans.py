"""Utterance traces, the bookkeeping: each session's utterances and their spans, bounded.

A ``user_speaking`` span is stood in for at its ``end`` (``_UserSpan``): the utterance's
attributes are written in one go just before it really ends, and a realtime span's end can
wait for its final transcript (``HOLD_SECONDS``, at most ``MAX_HELD`` a session).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from .._funnel import observe
from .._speech import SpeechSignal, StopEvidence, speech_of, stop_evidence
from .._state import Attached
from .._wrapping import hook_errors_logged, hook_failed

if TYPE_CHECKING:
    import asyncio


class _Tracing:
    """Whether a recording tracer provider is set: the per-event hooks do their work."""

    __slots__ = ("enabled", "warned_unholdable")

    def __init__(self) -> None:
        self.enabled = False
        self.warned_unholdable = False


# module state: LiveKit's tracer provider is process-wide, so is whether spans record
TRACING = _Tracing()

ATTR_ITEM_ID = "lk.utterance.item_id"
"""The utterance's ``item_id``; on an answer span, the item it answers."""
ATTR_SOURCE = "lk.utterance.source"
ATTR_SPEECH_STARTED_AT = "lk.utterance.speech_started_at"
ATTR_SPEECH_STOPPED_AT = "lk.utterance.speech_stopped_at"
ATTR_SPEECH_STOPPED_BY = "lk.utterance.speech_stopped_by"
ATTR_USER_TRANSCRIPT = "lk.pii.user_transcript"
"""LiveKit's own name for the user's transcript from 1.7 on (``trace_types.ATTR_USER_TRANSCRIPT``),
used on every release: user text only under an ``lk.pii.`` name."""
ATTR_GEN_AI_RESPONSE_ID = "gen_ai.response.id"

HOLD_SECONDS = 10.0
"""How long a realtime ``user_speaking`` ended by upstream waits for its final transcript."""
MAX_HELD = 8
"""Spans held at once per session; a ninth releases the oldest."""
MAX_RECORDS = 64
"""Utterances remembered per session (to match late transcripts and answers)."""


class _Record:
    """What one utterance's spans are told."""

    __slots__ = (
        "item_id",
        "source",
        "speech_started_at",
        "speech_stopped_at",
        "speech_stopped_by",
        "transcript",
        "turn",
        "user",
    )

    def __init__(self, item_id: str, source: str | None) -> None:
        self.item_id = item_id
        self.source = source
        self.speech_started_at: float | None = None
        self.speech_stopped_at: float | None = None
        self.speech_stopped_by: StopEvidence | None = None
        self.transcript: str | None = None
        self.user: _UserSpan | None = None
        self.turn: Any = None
        """An STT turn's ``user_turn``: around the ``user_speaking`` (STT pipeline), or a
        parallel STT's, stamped at its end of turn."""

    def identity(self) -> dict[str, Any]:
        attrs: dict[str, Any] = {ATTR_ITEM_ID: self.item_id}
        if self.source is not None:
            attrs[ATTR_SOURCE] = self.source
        if self.speech_started_at is not None:
            attrs[ATTR_SPEECH_STARTED_AT] = self.speech_started_at
        if self.speech_stopped_at is not None and self.speech_stopped_by is not None:
            attrs[ATTR_SPEECH_STOPPED_AT] = self.speech_stopped_at
            attrs[ATTR_SPEECH_STOPPED_BY] = self.speech_stopped_by
        return attrs

    def span_context(self) -> Any:
        """The context an answer links to: the span with the utterance's transcript (a
        realtime utterance's ``user_speaking``, an STT turn's ``user_turn``), else the other."""
        user = self.user.context if self.user is not None else None
        turn = self.turn.get_span_context() if self.turn is not None else None
        first, second = (user, turn) if self.source == "realtime" else (turn, user)
        return first if first is not None else second


class _UserSpan:
    """One ``user_speaking`` span. It stands in for the span's ``end`` (an instance attribute):
    the utterance's attributes are written in one go just before the span really ends, and a
    realtime span's end can wait for the final transcript."""

    __slots__ = (
        "book",
        "closed",
        "closed_at",
        "context",
        "end_time",
        "ended",
        "hold",
        "record",
        "span",
    )

    def __init__(self, span: Any, book: _Book, hold: bool) -> None:
        self.span: Any = span
        """The span until it really ends; then None (an ended span is not kept alive)."""
        self.context = span.get_span_context()
        """What an answer links to, and a late transcript's span is a child of."""
        self.book = book
        self.hold = hold
        self.record: _Record | None = None
        self.closed = False
        """Upstream ended it (its end may be held)."""
        self.closed_at = 0.0
        self.ended = False
        """Really ended: nothing can be set on it any more."""
        self.end_time: Any = None

    def __call__(self, end_time: Any = None) -> None:
        """Upstream's ``span.end(end_time=...)``."""
        if self.closed:
            return
        # ended now unless upstream said when: the time it would have got, not the release's
        self.closed, self.end_time = True, end_time if end_time is not None else time.time_ns()
        try:
            record = self.record
            heard = record is not None and record.transcript is not None
            if heard or not self.hold or not TRACING.enabled:
                self.release()
            else:
                self.book.hold(self)
        except Exception:
            hook_failed("holding a user_speaking span for its transcript")
            self.release()

    def release(self) -> None:
        """Write the utterance's attributes, then end the span as upstream asked (once)."""
        if self.ended:
            return
        self.ended = True
        book = self.book
        book.held.pop(id(self), None)
        if book.unbound is self:
            book.unbound = None
        span, self.span = self.span, None
        vars(span).pop("end", None)
        try:
            record = self.record
            if record is not None:
                attrs = record.identity()
                if record.transcript is not None and self.hold:
                    attrs[ATTR_USER_TRANSCRIPT] = record.transcript
                span.set_attributes(attrs)
        finally:
            span.end(end_time=self.end_time)


class _Book:
    """One AgentSession's utterances and their spans, bounded."""

    __slots__ = (
        "__weakref__",
        "held",
        "last",
        "last_stt_item",
        "pending",
        "records",
        "timer",
        "unbound",
        "unbound_turn",
    )

    def __init__(self) -> None:
        self.records: dict[str, _Record] = {}
        self.pending: _Record | None = None
        """An utterance whose speech start came before upstream opened its span."""
        self.unbound: _UserSpan | None = None
        """A span no utterance has claimed yet (claimed by the next start or transcript)."""
        self.unbound_turn: Any = None
        self.last: _UserSpan | None = None
        self.last_stt_item: str | None = None
        """The item of the latest STT transcript (a parallel STT's names the realtime item)."""
        self.held: dict[int, _UserSpan] = {}
        """Spans whose end waits for their transcript, oldest first."""
        self.timer: asyncio.TimerHandle | None = None

    def record(self, item_id: str, source: str | None) -> _Record:
        record = self.records.get(item_id)
        if record is None:
            record = self.records[item_id] = _Record(item_id, source)
            if len(self.records) > MAX_RECORDS:
                del self.records[next(iter(self.records))]
        return record

    def bind(self, record: _Record, user: _UserSpan, turn: Any) -> None:
        record.user, user.record = user, record
        if self.unbound is user:
            self.unbound, self.unbound_turn = None, None
        if turn is not None and turn.is_recording():
            record.turn = turn
            turn.set_attributes(record.identity())
        if user.closed and (record.transcript is not None or not user.hold):
            user.release()

    def hold(self, user: _UserSpan) -> None:
        user.closed_at = time.monotonic()
        self.held[id(user)] = user
        while len(self.held) > MAX_HELD:
            self.held.pop(next(iter(self.held))).release()
        if self.timer is None:
            self._arm(HOLD_SECONDS)

    def _arm(self, delay: float) -> None:
        """One timer a session, not one a span: it ends what has waited long enough."""
        import asyncio  # livekit's own import; ``import livekit_ext`` alone stays cheap

        try:
            self.timer = asyncio.get_running_loop().call_later(delay, self._expire)
        except RuntimeError:  # no loop to wait on: end them as upstream asked
            self.release_all()

    def _expire(self) -> None:
        self.timer = None
        with hook_errors_logged("ending a user_speaking span whose transcript never came"):
            now = time.monotonic()
            for user in list(self.held.values()):
                if now - user.closed_at >= HOLD_SECONDS:
                    user.release()
            if self.held:
                oldest = next(iter(self.held.values()))
                self._arm(max(HOLD_SECONDS - (now - oldest.closed_at), 0.01))

    def release_all(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        for user in list(self.held.values()):
            user.release()
        if self.unbound is not None and self.unbound.closed:
            self.unbound.release()

    # -- what the session says ----------------------------------------------------------

    def on_speech(self, signal: SpeechSignal) -> None:
        if not TRACING.enabled:
            return
        item_id = signal.item_id
        if signal.kind == "started":
            if item_id is None:
                return  # claimed by its first transcript
            record = self.record(item_id, "stt" if signal.origin == "stt" else "realtime")
            if record.speech_started_at is None:
                record.speech_started_at = signal.at
            if record.user is None:
                unbound = self.unbound
                if unbound is not None and not unbound.closed:
                    self.bind(record, unbound, self.unbound_turn)
                else:
                    self.pending = record
            return
        if item_id is not None:
            found = self.records.get(item_id)
        else:  # the framework's stop names no item: the span open last
            last = self.last
            found = last.record if last is not None else None
        if found is None or found.speech_stopped_at is not None:
            return
        found.speech_stopped_at, found.speech_stopped_by = signal.at, stop_evidence(signal)
        turn = found.turn
        if turn is not None and turn.is_recording():  # user_speaking gets it as it ends
            turn.set_attributes(
                {ATTR_SPEECH_STOPPED_AT: signal.at, ATTR_SPEECH_STOPPED_BY: found.speech_stopped_by}
            )

    def on_transcript(self, ev: Any) -> None:
        """Every user transcript (the funnel's observer). A realtime interim while no span is
        unclaimed changes nothing (its utterance has its record, or gets one with its final):
        three reads."""
        if not ev.is_final and self.unbound is None and ev.source == "realtime":
            return
        if not TRACING.enabled:
            return
        item_id = ev.item_id
        if item_id is None:
            return
        record = self.records.get(item_id)
        if record is None:
            record = self.record(item_id, ev.source)
            record.speech_started_at = ev.speech_started_at
        if record.user is None and self.unbound is not None:
            self.bind(record, self.unbound, self.unbound_turn)
        if ev.source == "stt":
            self.last_stt_item = item_id
        if not ev.is_final or record.transcript is not None or ev.source != "realtime":
            return  # (an STT turn: upstream's user_turn carries its transcript)
        record.transcript = ev.transcript
        if record.speech_stopped_at is None:  # as Utterances: the final says it had stopped
            record.speech_stopped_at, record.speech_stopped_by = ev.created_at, "final"
        user = record.user
        if user is None:
            return
        if not user.ended:
            if user.closed:
                user.release()
        else:
            _transcript_span(record, user.context)


def _transcript_span(record: _Record, parent: Any) -> None:
    """A final later than the hold: a ``user_transcript`` child of its utterance's span
    (``parent``: that span's context)."""
    from livekit.agents.telemetry import tracer
    from opentelemetry import trace

    context = trace.set_span_in_context(trace.NonRecordingSpan(parent))
    attrs = {**record.identity(), ATTR_USER_TRANSCRIPT: record.transcript}
    tracer.start_span("user_transcript", context=context, attributes=attrs).end()


BOOKS: Attached[_Book] = Attached("span_book", _Book)


def book_of(session: Any) -> _Book:
    """The session's book, made (and subscribed to its speech and transcripts) on first use."""
    book = BOOKS.get(session)
    if book is None:
        book = BOOKS.of(session)
        speech_of(session).subscribe(book.on_speech)
        observe(session, book.on_transcript)

        def released_at_close(ev: Any) -> None:
            with hook_errors_logged("ending the held user_speaking spans at session close"):
                book.release_all()

        session.on("close", released_at_close)
    return book


def release_everywhere() -> None:
    """The feature is off: every held span ends as upstream asked."""
    TRACING.enabled = False
    for session in BOOKS.owners():
        book = BOOKS.get(session)
        if book is not None:
            with hook_errors_logged("ending the held user_speaking spans"):
                book.release_all()
