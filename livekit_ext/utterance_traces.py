"""Utterance identity in traces: LiveKit's own OpenTelemetry spans carry each user utterance.

With a tracer provider set the way LiveKit documents it
(``livekit.agents.telemetry.set_tracer_provider``), the spans of a user turn carry what the
extension knows of the utterance:

- ``user_speaking`` (and an STT turn's ``user_turn``: the one around it in an STT pipeline, a
  parallel STT's next to a realtime model):
  ``lk.utterance.item_id``, ``lk.utterance.source``, ``lk.utterance.speech_started_at`` /
  ``lk.utterance.speech_stopped_at`` (Unix seconds, the extension's best times) and
  ``lk.utterance.speech_stopped_by`` (what the stop comes from, as ``Utterance.speech_stopped_by``);
  a realtime session's ``user_speaking`` also carries ``lk.pii.user_transcript`` (the final
  transcript).
- the agent turn that answers it (``agent_turn``; 1.8+ also ``realtime_inference``):
  ``lk.utterance.item_id`` of the item it answers, a span link to that utterance's span (the
  one holding its transcript: a realtime ``user_speaking``, an STT ``user_turn``), and for a
  realtime answer ``gen_ai.response.id``.

The attributes go on ``user_speaking`` in one ``set_attributes``, just before it really ends
(the extension stands in for the span's ``end``). A realtime transcript usually arrives after
its ``user_speaking`` ended (OpenAI sends it after
the speech stopped, often after the next one began). Such a span is held open: upstream's
``end(end_time=...)`` is recorded and performed, with the same end time, when the
utterance's final transcript is on it, at most ``HOLD_SECONDS`` later (at most ``MAX_HELD``
spans a session; all at session close). Every attribute is thus set before the span ends,
so LiveKit's own PII filter (1.8+: ``lk.pii.*`` dropped unless PII is allowed) treats ours
exactly as its own. A transcript later than the hold goes on a ``user_transcript`` child of
its utterance's span. A transcript is matched to its span by ``item_id``, never by which span
is open when it arrives.

Nothing of this runs per event until a recording tracer provider is set: the feature wraps
only ``_DynamicTracer.set_provider`` and ``AgentSession.start``, and installs its per-event
hooks (``AgentSession._update_user_state``, ``AgentActivity.on_end_of_turn``, the realtime and
pipeline reply tasks) when a provider is set, or a global OpenTelemetry provider is found at
session start. A provider set back to a NoOp turns them off (they return at once).
"""

from __future__ import annotations

import logging
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._observe import observe_before_listeners
from ._registry import (
    ENGINE,
    Build,
    Feature,
    FeatureStatus,
    Patcher,
    Probe,
    hook_errors_logged,
    hook_failed,
    when_active,
)
from ._tracks import REALTIME_TRACK, SpeechSignal, session_track
from .transcript_identity import FEATURE as TRANSCRIPT_IDENTITY
from .transcript_identity import FUNNEL

if TYPE_CHECKING:
    import asyncio

    from .utterances import StopEvidence

logger = logging.getLogger("livekit_ext")

FEATURE = "utterance_traces"

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

_BOOK = "_livekit_ext_span_book"


def _load_current_span() -> Any:
    from opentelemetry.trace import get_current_span

    _State.current_span = get_current_span
    return get_current_span()


def _load_stop_evidence(signal: SpeechSignal) -> StopEvidence:
    from .utterances import stop_evidence  # livekit.rtc: imported by now, not at ours

    _State.stop_evidence = stop_evidence
    return stop_evidence(signal)


class _State:
    enabled = False
    """A recording tracer provider is set: the per-event hooks do their work."""
    books: weakref.WeakSet[_Book] = weakref.WeakSet()
    warned_unholdable = False
    current_span: Callable[[], Any] = _load_current_span
    """``opentelemetry.trace.get_current_span``, once imported (by the first call)."""
    stop_evidence: Callable[[SpeechSignal], StopEvidence] = _load_stop_evidence
    """``utterances.stop_evidence``, once imported (by the first call)."""


# -- per-session bookkeeping -----------------------------------------------------------------


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
        user = self.user.span if self.user is not None else None
        first, second = (user, self.turn) if self.source == "realtime" else (self.turn, user)
        chosen = first if first is not None else second
        return chosen.get_span_context() if chosen is not None else None


class _UserSpan:
    """One ``user_speaking`` span. It stands in for the span's ``end`` (an instance attribute):
    the utterance's attributes are written in one go just before the span really ends, and a
    realtime span's end can wait for the final transcript."""

    __slots__ = ("book", "closed", "closed_at", "end_time", "ended", "hold", "record", "span")

    def __init__(self, span: Any, book: _Book, hold: bool) -> None:
        self.span = span
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
            if heard or not self.hold or not _State.enabled:
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
        span = self.span
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
        self.records: OrderedDict[str, _Record] = OrderedDict()
        self.pending: _Record | None = None
        """An utterance whose speech start came before upstream opened its span."""
        self.unbound: _UserSpan | None = None
        """A span no utterance has claimed yet (claimed by the next start or transcript)."""
        self.unbound_turn: Any = None
        self.last: _UserSpan | None = None
        self.last_stt_item: str | None = None
        """The item of the latest STT transcript (a parallel STT's names the realtime item)."""
        self.held: OrderedDict[int, _UserSpan] = OrderedDict()
        self.timer: asyncio.TimerHandle | None = None

    def record(self, item_id: str, source: str | None) -> _Record:
        record = self.records.get(item_id)
        if record is None:
            record = self.records[item_id] = _Record(item_id, source)
            if len(self.records) > MAX_RECORDS:
                self.records.popitem(last=False)
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
            _, oldest = self.held.popitem(last=False)
            oldest.release()
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
        if not _State.enabled:
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
        found.speech_stopped_at, found.speech_stopped_by = signal.at, _State.stop_evidence(signal)
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
        if not _State.enabled:
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
            _transcript_span(record, user.span)


def _transcript_span(record: _Record, parent: Any) -> None:
    """A final later than the hold: a ``user_transcript`` child of its utterance's span."""
    from livekit.agents.telemetry import tracer
    from opentelemetry import trace

    context = trace.set_span_in_context(trace.NonRecordingSpan(parent.get_span_context()))
    attrs = {**record.identity(), ATTR_USER_TRANSCRIPT: record.transcript}
    tracer.start_span("user_transcript", context=context, attributes=attrs).end()


def _book_of(session: Any) -> _Book:
    book: _Book | None = getattr(session, _BOOK, None)
    if book is None:
        book = _Book()
        setattr(session, _BOOK, book)
        _State.books.add(book)
        track = session_track(session)
        track.speech.subscribe(book.on_speech)
        if FUNNEL.carries(session):
            FUNNEL.add_observer(session, book.on_transcript)
        else:
            observe_before_listeners(session, "user_input_transcribed", book.on_transcript)

        def released_at_close(ev: Any) -> None:
            with hook_errors_logged("ending the held user_speaking spans at session close"):
                book.release_all()

        session.on("close", released_at_close)
    return book


# -- hooks installed once a tracer provider records -----------------------------------------


def _user_state(original: Callable[..., Any]) -> Callable[..., Any]:
    def _update_user_state(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not _State.enabled:
            return original(self, *args, **kwargs)
        before = self._user_speaking_span
        result = original(self, *args, **kwargs)
        try:
            span = self._user_speaking_span
            if span is not None and span is not before:
                _span_opened(self, span)
        except Exception:
            hook_failed("putting the utterance on its user_speaking span")
        return result

    return _update_user_state


def _span_opened(session: Any, span: Any) -> None:
    if not span.is_recording():
        return
    book: _Book | None = getattr(session, _BOOK, None)
    if book is None:
        book = _book_of(session)
    rt_session = getattr(session._activity, "_rt_session", None)
    user = _UserSpan(span, book, hold=rt_session is not None)
    try:
        span.end = user  # the utterance's attributes go on as it ends (see _UserSpan)
    except (AttributeError, TypeError):  # a span class with slots (not the OTel SDK's)
        if not _State.warned_unholdable:
            _State.warned_unholdable = True
            logger.warning(
                "livekit_ext: the tracer provider's %s spans cannot carry the utterance "
                "(their end cannot be deferred); utterance attributes are not written",
                type(span).__name__,
            )
        return
    parent = _State.current_span()
    turn = parent if getattr(parent, "name", None) == "user_turn" else None
    book.last = user
    record, book.pending = book.pending, None
    if record is not None and record.user is None:
        book.bind(record, user, turn)
    else:
        book.unbound, book.unbound_turn = user, turn


def _end_of_turn(original: Callable[..., Any]) -> Callable[..., Any]:
    def on_end_of_turn(self: Any, *args: Any, **kwargs: Any) -> Any:
        if _State.enabled:
            try:
                _turn_ending(self, args[0] if args else kwargs.get("info"))
            except Exception:
                hook_failed("putting the utterance on its user_turn span")
        return original(self, *args, **kwargs)

    return on_end_of_turn


def _turn_ending(activity: Any, info: Any) -> None:
    """An STT turn ends with its ``user_turn`` still open: one no ``user_speaking`` was opened
    in (a parallel STT's next to a realtime model, made at its end of turn) gets the identity
    of the utterance its transcripts named."""
    book: _Book | None = getattr(activity._session, _BOOK, None)
    if book is None or book.last_stt_item is None:
        return
    span = getattr(info, "user_turn_span", None)  # 1.8+
    if span is None:
        span = getattr(getattr(activity, "_audio_recognition", None), "_user_turn_span", None)
    record = book.records.get(book.last_stt_item)
    if span is None or record is None or record.turn is not None or not span.is_recording():
        return
    record.turn = span
    span.set_attributes({**record.identity(), ATTR_SOURCE: "stt"})


def _answered(activity: Any, generation_ev: Any) -> str | None:
    """The user item a realtime generation answers: Gemini's generation names its input;
    the OpenAI protocol answers the speech that stopped last; others the latest transcript."""
    rt_session = getattr(activity, "_rt_session", None)
    generation = getattr(rt_session, "_current_generation", None)
    response_id = getattr(generation_ev, "response_id", None)
    if generation is not None and getattr(generation, "response_id", None) == response_id:
        input_id = getattr(generation, "input_id", None)
        if isinstance(input_id, str):
            return input_id
    track = getattr(rt_session, REALTIME_TRACK, None)
    if track is None:
        return None
    item_id: str | None = (
        track.last_stopped_item if track.provider == "openai" else track.transcribing_item
    )
    return item_id


def _stamp_answer(activity: Any, kwargs: dict[str, Any], item_id: str | None) -> None:
    from opentelemetry import trace

    handle = kwargs.get("speech_handle")
    spans = [trace.get_current_span(getattr(handle, "_agent_turn_context", None))]
    if (inference := kwargs.get("inference_span")) is not None:
        spans.append(inference)
    attrs: dict[str, Any] = {}
    response_id = getattr(kwargs.get("generation_ev"), "response_id", None)
    if isinstance(response_id, str) and response_id:
        attrs[ATTR_GEN_AI_RESPONSE_ID] = response_id
    book: _Book | None = getattr(getattr(activity, "_session", None), _BOOK, None)
    record = book.records.get(item_id) if book is not None and item_id is not None else None
    context = None
    if record is not None:
        attrs[ATTR_ITEM_ID] = record.item_id
        context = record.span_context()
    for span in spans:
        if not span.is_recording():
            continue
        if attrs:
            span.set_attributes(attrs)
        if context is not None and context.is_valid:
            span.add_link(context, {ATTR_ITEM_ID: record.item_id if record else ""})


def _realtime_answer(original: Callable[..., Any]) -> Callable[..., Any]:
    async def _realtime_generation_task_impl(self: Any, *args: Any, **kwargs: Any) -> Any:
        if _State.enabled:
            try:
                _stamp_answer(self, kwargs, _answered(self, kwargs.get("generation_ev")))
            except Exception:
                hook_failed("linking a realtime answer to its utterance")
        return await original(self, *args, **kwargs)

    return _realtime_generation_task_impl


def _pipeline_answer(original: Callable[..., Any]) -> Callable[..., Any]:
    async def _pipeline_reply_task_impl(self: Any, *args: Any, **kwargs: Any) -> Any:
        if _State.enabled:
            try:
                message = kwargs.get("new_message")
                item_id = getattr(message, "id", None) if message is not None else None
                _stamp_answer(self, kwargs, item_id if isinstance(item_id, str) else None)
            except Exception:
                hook_failed("linking a reply to its utterance")
        return await original(self, *args, **kwargs)

    return _pipeline_reply_task_impl


def _hooks() -> list[tuple[type, str, Build]]:
    from livekit.agents.voice.agent_activity import AgentActivity
    from livekit.agents.voice.agent_session import AgentSession

    return [
        (AgentSession, "_update_user_state", _user_state),
        (AgentActivity, "on_end_of_turn", _end_of_turn),
        (AgentActivity, "_realtime_generation_task_impl", _realtime_answer),
        (AgentActivity, "_pipeline_reply_task_impl", _pipeline_answer),
    ]


def hooks_installed() -> list[str]:
    """The per-event hooks of the feature now in place (none until a provider records)."""
    patcher = ENGINE.active.get(FEATURE)
    if patcher is None:
        return []
    return [
        f"{owner.__name__}.{name}"
        for owner, name, _ in _hooks()
        if patcher.has_wrapped(owner, name)
    ]


def _records(provider: Any) -> bool:
    """Whether spans of ``provider`` record (a NoOp or a proxy with no real provider behind it
    does not)."""
    from opentelemetry import trace

    if isinstance(provider, trace.ProxyTracerProvider):
        return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    return not isinstance(provider, trace.NoOpTracerProvider)


def _enable() -> None:
    """A recording provider is set: the per-event hooks go in (once) and do their work."""
    for owner, name, build in _hooks():
        ENGINE.wrap_inline_when_needed(FEATURE, owner, name, build)
    _State.enabled = True


@when_active(FEATURE)
def _on_set_provider(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
    result = wrapped(*args, **kwargs)
    with hook_errors_logged("following the tracer provider"):
        from livekit.agents import telemetry

        if instance is telemetry.tracer:
            if _records(instance._tracer_provider):
                _enable()
            else:
                _State.enabled = False  # the hooks stay, and return at once
    return result


@when_active(FEATURE)
async def _on_session_start(
    wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any
) -> Any:
    with hook_errors_logged("attaching utterance traces to a session"):
        from livekit.agents import telemetry

        if not _State.enabled and _records(telemetry.tracer._tracer_provider):
            _enable()  # a global OpenTelemetry provider, set after livekit was imported
        if _State.enabled:
            _book_of(instance)  # before start: the first speech start is seen
    return await wrapped(*args, **kwargs)


def _disable() -> None:
    _State.enabled = False
    for book in list(_State.books):
        with hook_errors_logged("ending the held user_speaking spans"):
            book.release_all()


class UtteranceTraces(Feature):
    name = FEATURE
    description = (
        "LiveKit's user_speaking / user_turn / agent_turn spans carry the utterance: item id, "
        "speech start and stop, source, the realtime transcript (lk.pii.), answer links"
    )
    requires = (TRANSCRIPT_IDENTITY,)

    def probe(self) -> Probe:
        from livekit.agents.telemetry import trace_types

        if any(value == ATTR_ITEM_ID for value in vars(trace_types).values()):
            return Probe("native", f"livekit-agents' spans already carry {ATTR_ITEM_ID}")
        return Probe("patchable", "puts each utterance's identity on LiveKit's spans")

    def install(self, patcher: Patcher) -> None:
        from livekit.agents import telemetry
        from livekit.agents.telemetry.traces import _DynamicTracer
        from livekit.agents.voice.agent_session import AgentSession

        hooks = _hooks()  # every hook's target checked now, installed when a provider records
        patcher.wrap(_DynamicTracer, "set_provider", _on_set_provider)
        patcher.wrap(AgentSession, "start", _on_session_start)
        patcher.on_undo(_disable)
        if _records(telemetry.tracer._tracer_provider):
            for owner, name, build in hooks:
                patcher.wrap_inline(owner, name, build)
            _State.enabled = True

    def settle(self, applied: FeatureStatus) -> FeatureStatus:
        if applied.state != "patched":
            return applied
        if _State.enabled:
            return FeatureStatus("patched", f"{applied.reason}; a tracer provider records")
        return FeatureStatus(
            "patched",
            f"{applied.reason}, once a tracer provider is set "
            "(livekit.agents.telemetry.set_tracer_provider); until then nothing runs",
        )
