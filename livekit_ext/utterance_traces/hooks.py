"""Utterance traces, the per-event hooks (installed once a tracer provider records): the
utterance goes on ``user_speaking`` as it opens, on an STT turn's ``user_turn`` as it ends,
and on the agent turn that answers it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from .. import _touchpoints as tp
from .._wrapping import hook_failed
from ..transcript_identity.realtime_speech import REALTIME
from .spans import (
    ATTR_GEN_AI_RESPONSE_ID,
    ATTR_ITEM_ID,
    ATTR_SOURCE,
    BOOKS,
    TRACING,
    _Book,
    _UserSpan,
    book_of,
)

logger = logging.getLogger("livekit_ext")

UPDATE_USER_STATE = tp.wrap(
    "user_speaking is opened here (and ended: its end may wait for the transcript)",
    f"{tp.SESSION}._update_user_state",
)
END_OF_TURN = tp.wrap(
    "an STT turn ends, its user_turn still open (a parallel STT's gets the utterance)",
    f"{tp.ACTIVITY}.on_end_of_turn",
)
REALTIME_ANSWER = tp.wrap(
    "a realtime generation's agent_turn: the item it answers, a link to it",
    f"{tp.ACTIVITY}._realtime_generation_task_impl",
)
PIPELINE_ANSWER = tp.wrap(
    "a pipeline reply's agent_turn: the turn it answers, a link to it",
    f"{tp.ACTIVITY}._pipeline_reply_task_impl",
)
USER_SPEAKING_SPAN = tp.attr("the open user_speaking span", f"{tp.SESSION}._user_speaking_span")
SESSION_ACTIVITY = tp.attr("the session's activity", f"{tp.SESSION}._activity")
RT_SESSION = tp.attr("a realtime session holds its user_speaking", f"{tp.ACTIVITY}._rt_session")
ACTIVITY_SESSION = tp.attr(
    "the activity's AgentSession (its utterances)", f"{tp.ACTIVITY}._session"
)
AUDIO_RECOGNITION = tp.attr("the STT turn's recognition", f"{tp.ACTIVITY}._audio_recognition")
USER_TURN_SPAN = tp.attr(
    "the open user_turn span (1.8+: also handed over in the end-of-turn info)",
    f"{tp.RECOGNITION}:AudioRecognition._user_turn_span",
)
END_OF_TURN_SPAN = tp.attr(
    "1.8+: the turn's user_turn span, handed to on_end_of_turn (else read off recognition)",
    f"{tp.RECOGNITION}:_EndOfTurnInfo.user_turn_span",
    optional=True,
)
AGENT_TURN_CONTEXT = tp.attr(
    "the agent_turn span's context",
    "livekit.agents.voice.speech_handle:SpeechHandle._agent_turn_context",
)
GEMINI_GENERATION = tp.attr(
    "Gemini: the generation's input item is the one it answers",
    f"{tp.GEMINI}:RealtimeSession._current_generation",
    optional=True,
)
GEMINI_RESPONSE_ID = tp.attr(
    "Gemini: the open generation's response id (its input_id: transcript_identity's)",
    f"{tp.GEMINI}:_ResponseGeneration.response_id",
    optional=True,
)


def _user_state(original: Callable[..., Any]) -> Callable[..., Any]:
    # built once a provider records, so OpenTelemetry is loaded: one import, not one a span
    from opentelemetry.trace import get_current_span

    def _update_user_state(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not TRACING.enabled:
            return original(self, *args, **kwargs)
        before = self._user_speaking_span
        result = original(self, *args, **kwargs)
        try:
            span = self._user_speaking_span
            if span is not None and span is not before:
                _span_opened(self, span, get_current_span())
        except Exception:
            hook_failed("putting the utterance on its user_speaking span")
        return result

    return _update_user_state


def _span_opened(session: Any, span: Any, parent: Any) -> None:
    """``parent``: the span current where upstream opened it (an STT turn's ``user_turn``)."""
    if not span.is_recording():
        return
    book = getattr(session, BOOKS.attr, None) or book_of(session)
    user = _UserSpan(span, book, hold=getattr(session._activity, "_rt_session", None) is not None)
    try:
        span.end = user  # the utterance's attributes go on as it ends (see _UserSpan)
    except (AttributeError, TypeError):  # a span class with slots (not the OTel SDK's)
        if not TRACING.warned_unholdable:
            TRACING.warned_unholdable = True
            logger.warning(
                "livekit_ext: the tracer provider's %s spans cannot carry the utterance "
                "(their end cannot be deferred); utterance attributes are not written",
                type(span).__name__,
            )
        return
    turn = parent if getattr(parent, "name", None) == "user_turn" else None
    book.last = user
    record, book.pending = book.pending, None
    if record is not None and record.user is None:
        book.bind(record, user, turn)
    else:
        book.unbound, book.unbound_turn = user, turn


def _end_of_turn(original: Callable[..., Any]) -> Callable[..., Any]:
    def on_end_of_turn(self: Any, *args: Any, **kwargs: Any) -> Any:
        if TRACING.enabled:
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
    book: _Book | None = BOOKS.get(activity._session)
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
    speech = REALTIME.get(rt_session)
    if speech is None:
        return None
    item_id: str | None = (
        speech.last_stopped_item if speech.provider == "openai" else speech.transcribing_item
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
    book: _Book | None = BOOKS.get(getattr(activity, "_session", None))
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
        if TRACING.enabled:
            try:
                _stamp_answer(self, kwargs, _answered(self, kwargs.get("generation_ev")))
            except Exception:
                hook_failed("linking a realtime answer to its utterance")
        return await original(self, *args, **kwargs)

    return _realtime_generation_task_impl


def _pipeline_answer(original: Callable[..., Any]) -> Callable[..., Any]:
    async def _pipeline_reply_task_impl(self: Any, *args: Any, **kwargs: Any) -> Any:
        if TRACING.enabled:
            try:
                message = kwargs.get("new_message")
                item_id = getattr(message, "id", None) if message is not None else None
                _stamp_answer(self, kwargs, item_id if isinstance(item_id, str) else None)
            except Exception:
                hook_failed("linking a reply to its utterance")
        return await original(self, *args, **kwargs)

    return _pipeline_reply_task_impl


HOOKS = (
    (UPDATE_USER_STATE, _user_state),
    (END_OF_TURN, _end_of_turn),
    (REALTIME_ANSWER, _realtime_answer),
    (PIPELINE_ANSWER, _pipeline_answer),
)
"""The per-event hooks, installed when a tracer provider records (``install_when_needed``)."""
