"""Parallel STT, the transcripts: what upstream drops of a parallel STT is forwarded through
the session's funnel, with the item of the realtime utterance it overlaps; what upstream
forwards itself is stamped at the funnel. Upstream's own listeners that would act on a
forwarded transcript (RoomIO, IVR) keep seeing only what they saw before.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Callable
from typing import Any

from .. import _touchpoints as tp
from .._wrapping import Patcher, hook_errors_logged, when_active
from ..transcript_identity.fields import event_class
from ..transcript_identity.realtime_speech import REALTIME
from ..transcript_identity.stt_turns import new_item_id
from .matching import event_time, overlapping_item, provider_time
from .state import FEATURE, HookCall, SessionState, enabled_state, parallel_state

logger = logging.getLogger("livekit_ext")

_AR = tp.RECOGNITION

INTERIM = tp.wrap(
    "an STT interim a transcribing realtime model drops", f"{tp.ACTIVITY}.on_interim_transcript"
)
FINAL = tp.wrap(
    "an STT final a transcribing realtime model drops", f"{tp.ACTIVITY}.on_final_transcript"
)
ON_ERROR = tp.wrap("a parallel STT's fatal error becomes recoverable", f"{tp.ACTIVITY}._on_error")
STT_EVENT = tp.wrap("the STT's START/END_OF_SPEECH", f"{_AR}:AudioRecognition._on_stt_event")
FUNNEL = tp.call(
    "emit a forwarded STT transcript through the funnel", f"{tp.SESSION}._user_input_transcribed"
)
UPSTREAM_LISTENERS = (
    tp.wrap(
        "the room's user transcription ignores forwarded STT events",
        f"{tp.ROOM_IO}._on_user_input_transcribed",
        optional=True,
    ),
    tp.wrap(
        "IVR loop detection ignores forwarded STT events",
        "livekit.agents.voice.ivr.ivr_activity:IVRActivity._on_user_input_transcribed",
        optional=True,
    ),
)
ACTIVITY_LLM = tp.attr(
    "the activity's model: is it realtime, does it transcribe", f"{tp.ACTIVITY}.llm"
)
RECOGNITION_SESSION = tp.attr(
    "the audio recognition's session: its STT events belong to it",
    f"{_AR}:AudioRecognition._session",
)


def install(patcher: Patcher) -> None:
    patcher.wrap(INTERIM, _transcript_hook(is_final=False))
    patcher.wrap(FINAL, _transcript_hook(is_final=True))
    patcher.wrap(ON_ERROR, _error)
    patcher.wrap(STT_EVENT, _stt_event)
    for listener in UPSTREAM_LISTENERS:
        if listener.resolvable(importing=True):
            patcher.wrap(listener, _unless_forwarded)
        else:
            logger.debug("livekit_ext: %s not found; no guard needed", listener)


def _identify(
    activity: Any, state: SessionState, stt_ev: Any, *, is_final: bool
) -> tuple[str, float]:
    """The ``item_id`` and speech start of the realtime utterance the STT one overlaps, else
    the STT utterance's own; a final closes the STT utterance."""
    at = event_time(stt_ev)
    utterance = state.utterances.current(at)
    start, end = utterance.interval(at)
    if is_final and (said := provider_time(getattr(stt_ev, "speech_end_time", None), at)):
        end = max(min(end, said), start)
    item_id: str | None = None
    started = start
    rt_session = getattr(activity, "_rt_session", None)
    if rt_session is not None:
        speech = REALTIME.of(rt_session)
        item_id = overlapping_item(speech.starts, speech.stops, state.completed, start, end)
        if item_id is not None:
            started = speech.starts.get(item_id, start)
    if item_id is None:
        if utterance.fresh_id is None:
            utterance.fresh_id = new_item_id()
        item_id = utterance.fresh_id
    if is_final:
        state.utterances.finalized(utterance, at)
    return item_id, started


def _stamp(call: HookCall, ev: Any) -> None:
    """Identity for an STT transcript upstream emits itself (upstream gives it none)."""
    item_id, started = _identify(call.activity, call.state, call.stt_ev, is_final=call.is_final)
    ev.item_id = item_id
    ev.source = "stt"
    ev.speech_started_at = min(started, ev.created_at)


# module state: upstream's own listeners that must skip a forwarded transcript (RoomIO's,
# IVRActivity's) run synchronously inside the emit below, and reach their session by a
# different path each (and per release); a flag scoped to this call is what they all see
_FORWARDING: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "livekit_ext_parallel_stt_forwarding", default=False
)


def _transcript_hook(is_final: bool) -> Callable[..., Any]:
    @when_active(FEATURE)
    def hook(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        """Run upstream's handler as is; whatever it drops of a parallel STT, forward."""
        call = None
        try:
            if (state := parallel_state(instance)) is not None:
                stt_ev = args[0] if args else kwargs.get("ev")
                call = HookCall(instance, state, stt_ev, is_final)
        except Exception:
            logger.exception("livekit_ext: reading a parallel STT transcript failed")
        if call is None:
            return wrapped(*args, **kwargs)
        outer, call.state.hook_call = call.state.hook_call, call
        try:
            result = wrapped(*args, **kwargs)
        finally:
            call.state.hook_call = outer
        if not call.forwarded:  # upstream dropped it: the realtime model transcribes itself
            _forward(call)
        return result

    return hook


def _forward(call: HookCall) -> None:
    """Emit the STT transcript upstream dropped, through the session's one funnel."""
    try:
        alternatives = getattr(call.stt_ev, "alternatives", None)
        if not alternatives:
            return
        alt = alternatives[0]
        item_id, started = _identify(call.activity, call.state, call.stt_ev, is_final=call.is_final)
        now = time.time()
        # the values are already typed (SpeechData normalises its language): skip validation
        out = event_class().model_construct(
            transcript=alt.text,
            is_final=call.is_final,
            language=alt.language,
            speaker_id=alt.speaker_id,
            created_at=now,
            item_id=item_id,
            speech_started_at=min(started, now),
            source="stt",
        )
    except Exception:
        logger.exception("livekit_ext: building a parallel STT transcript failed; dropped")
        return
    token = _FORWARDING.set(True)
    try:
        call.activity._session._user_input_transcribed(out)
    except Exception:
        logger.exception("livekit_ext: emitting a parallel STT transcript failed")
    finally:
        _FORWARDING.reset(token)


def stamp_upstreams_transcript(state: SessionState) -> Callable[[Any], None]:
    """An STT transcript upstream forwards itself (a realtime model that does not transcribe)
    gets the parallel identity at the funnel, before anything enriches or observes it."""

    def stamp(ev: Any) -> None:
        call = state.hook_call
        if call is not None and not call.forwarded:
            call.forwarded = True
            with hook_errors_logged("stamping a parallel STT transcript"):
                _stamp(call, ev)

    return stamp


@when_active(FEATURE)
def _stt_event(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
    """See the STT's START/END_OF_SPEECH, which reach no hook while a realtime model leads."""
    try:
        state = enabled_state(getattr(instance, "_session", None))
        if state is not None:
            ev = args[0] if args else kwargs.get("ev")
            kind = getattr(ev, "type", None)
            if kind == "start_of_speech":  # a str enum in every release
                at = event_time(ev)
                started = provider_time(getattr(ev, "speech_start_time", None), at)
                state.utterances.speech_started(started or at)
            elif kind == "end_of_speech":
                at = event_time(ev)
                ended = provider_time(getattr(ev, "speech_end_time", None), at)
                state.utterances.speech_ended(ended or at)
    except Exception:
        logger.exception("livekit_ext: reading a parallel STT speech event failed")
    return wrapped(*args, **kwargs)


@when_active(FEATURE)
def _error(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
    """A parallel STT's fatal error must not close the realtime conversation: recoverable."""
    with hook_errors_logged("softening a parallel STT error"):
        error = args[0] if args else kwargs.get("error")
        state = parallel_state(instance)
        if state is not None and _is_stt_error(error):
            state.utterances.reset()
        if state is not None and _is_stt_error(error) and not error.recoverable:
            logger.warning(
                "livekit_ext: the parallel STT failed (%r); reported as recoverable, the "
                "realtime conversation goes on",
                getattr(error, "error", error),
            )
            softened = error.model_copy(update={"recoverable": True})
            if args:
                args = (softened, *args[1:])
            else:
                kwargs = {**kwargs, "error": softened}
    return wrapped(*args, **kwargs)


def _is_stt_error(error: Any) -> bool:
    from livekit.agents import stt

    return isinstance(error, stt.STTError)


@when_active(FEATURE)
def _unless_forwarded(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
    """Upstream's own listeners (room transcription, IVR) keep seeing what they saw before."""
    if _FORWARDING.get():
        return None
    return wrapped(*args, **kwargs)
