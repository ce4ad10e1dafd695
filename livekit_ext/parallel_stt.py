"""Parallel STT: keep a realtime model for the conversation and hear what the ``stt=`` heard.

With ``AgentSession(llm=<RealtimeModel>, stt=<STT>)`` upstream runs the STT on the session's
audio but drops its transcripts whenever the realtime model transcribes itself
(``AgentActivity.on_interim_transcript`` / ``on_final_transcript`` return early).
``enable_parallel_stt(session)`` forwards exactly those dropped transcripts as
``user_input_transcribed`` with ``source="stt"`` and the ``item_id`` of the realtime utterance
they overlap in time. Nothing else changes: the forwarded event goes to the session's
listeners only, never into the chat context, the turn detector or the realtime model, and
upstream's own listeners that would act on it (the room's user transcription, IVR loop
detection) keep seeing only what they saw before.

A parallel STT that fails must not end the conversation it is not part of: its unrecoverable
errors are reported as recoverable (releases up to 1.5 close the session on the first one,
later ones after a few), and on releases that do not recreate a failed STT stream themselves
it is restarted.
"""

from __future__ import annotations

import contextvars
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from . import _funnel
from . import _touchpoints as tp
from ._engine import ENGINE, Feature, Probe
from ._state import Attached
from ._stt_matching import (
    Completed,
    SttUtterances,
    event_time,
    overlapping_item,
    provider_time,
)
from ._wrapping import ACTIVE, Patcher, hook_errors_logged, install_when_needed, when_active
from .identity import identity
from .transcript_identity.fields import event_class
from .transcript_identity.realtime_speech import REALTIME
from .transcript_identity.stt_turns import new_item_id
from .transcripts import TranscriptLog, _check_window, session_log

logger = logging.getLogger("livekit_ext")

FEATURE = "parallel_stt"

_RESTART_BACKOFF = 0.5  # what 1.6+ waits before recreating a failed STT stream

RestartMode = Literal["native", "pipeline", "task", "none"]


# -- per-session state ---------------------------------------------------------------------


@dataclass
class _State:
    """One session's parallel STT."""

    log: TranscriptLog | None = None
    enabled: bool = False
    utterances: SttUtterances = field(default_factory=SttUtterances)
    completed: Completed = field(default_factory=Completed)
    """Realtime item -> when its final transcript arrived (an end for providers with no stop)."""
    hook_call: _HookCall | None = None
    """The STT transcript the activity is handling now: set around upstream's handler, which
    calls the funnel synchronously when it forwards the transcript itself."""

    def note_transcribed(self, ev: Any) -> None:
        """A realtime final went out: when it completed is an end for matching by time."""
        if ev.is_final:
            ident = identity(ev)
            if ident.source == "realtime" and ident.item_id is not None:
                self.completed.note(ident.item_id, ev.created_at)


PARALLEL: Attached[_State] = Attached("parallel_stt", _State)


def _enabled_state(session: Any) -> _State | None:
    state = PARALLEL.get(session)
    return state if state is not None and state.enabled else None


# -- public API ----------------------------------------------------------------------------


def enable_parallel_stt(session: Any, *, window: int = 256) -> TranscriptLog:
    """Forward the ``stt=`` transcripts a realtime ``llm=`` drops; before or after ``start``.

    Returns the session's :class:`TranscriptLog` (also reachable with ``transcripts``).
    Idempotent; a second call only changes ``window``.
    """
    _check_window(window)
    state = PARALLEL.of(session)
    state.log = log = session_log(session, window=window)
    if not state.enabled:
        state.enabled = True
        # this session's transcripts only: other sessions' funnel runs no parallel STT hook
        _funnel.add_stamper(session, _stamp_upstreams_transcript(state))
        _funnel.add_observer(session, state.note_transcribed)
    if _native():
        session.parallel_stt = True
    elif FEATURE not in ACTIVE:
        reason = getattr(ENGINE.status().get(FEATURE), "reason", "not registered")
        logger.warning(
            "livekit_ext: enable_parallel_stt(): the parallel_stt feature is not applied (%s); "
            "STT transcripts stay dropped until livekit_ext.apply() succeeds",
            reason,
        )
    if getattr(session, "stt", None) is None:
        logger.warning(
            "livekit_ext: enable_parallel_stt(): the session has no stt=; only an agent with "
            "its own stt will transcribe in parallel"
        )
    return log


# -- correlation ---------------------------------------------------------------------------


def _identify(activity: Any, state: _State, stt_ev: Any, *, is_final: bool) -> tuple[str, float]:
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


def _stamp(call: _HookCall, ev: Any) -> None:
    """Identity for an STT transcript upstream emits itself (upstream gives it none)."""
    item_id, started = _identify(call.activity, call.state, call.stt_ev, is_final=call.is_final)
    ev.item_id = item_id
    ev.source = "stt"
    ev.speech_started_at = min(started, ev.created_at)


# -- wrappers ------------------------------------------------------------------------------


@dataclass
class _HookCall:
    """An STT transcript the activity is handling; ``forwarded`` once upstream emitted it."""

    activity: Any
    state: _State
    stt_ev: Any
    is_final: bool
    forwarded: bool = False


# module state: upstream's own listeners that must skip a forwarded transcript (RoomIO's,
# IVRActivity's) run synchronously inside the emit below, and reach their session by a
# different path each (and per release); a flag scoped to this call is what they all see
_FORWARDING: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "livekit_ext_parallel_stt_forwarding", default=False
)
# module state: 1.5.x creates the STT pump's task inside update_stt; the task inherits the
# context, and nothing else of the call reaches it (the pipeline holds no session)
_PIPELINE_SESSION: contextvars.ContextVar[Any] = contextvars.ContextVar(
    "livekit_ext_parallel_stt_pipeline_session", default=None
)


def _parallel_state(activity: Any) -> _State | None:
    """The session's state when its STT runs next to a realtime model and forwarding is on."""
    state = _enabled_state(getattr(activity, "_session", None))
    if state is None:
        return None
    return state if _is_realtime(getattr(activity, "llm", None)) else None


def _transcribes(activity: Any) -> bool:
    """Whether the activity's realtime model transcribes the user itself."""
    capabilities = getattr(getattr(activity, "llm", None), "capabilities", None)
    return bool(getattr(capabilities, "user_transcription", False))


def _is_realtime(model: Any) -> bool:
    from livekit.agents import llm

    return isinstance(model, llm.RealtimeModel)


def _transcript_hook(is_final: bool) -> Callable[..., Any]:
    @when_active(FEATURE)
    def hook(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        """Run upstream's handler as is; whatever it drops of a parallel STT, forward."""
        call = None
        try:
            if (state := _parallel_state(instance)) is not None:
                stt_ev = args[0] if args else kwargs.get("ev")
                call = _HookCall(instance, state, stt_ev, is_final)
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


def _forward(call: _HookCall) -> None:
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


def _stamp_upstreams_transcript(state: _State) -> Callable[[Any], None]:
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
def _on_stt_event(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
    """See the STT's START/END_OF_SPEECH, which reach no hook while a realtime model leads."""
    try:
        state = _enabled_state(getattr(instance, "_session", None))
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
def _on_error(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
    """A parallel STT's fatal error must not close the realtime conversation: recoverable."""
    with hook_errors_logged("softening a parallel STT error"):
        error = args[0] if args else kwargs.get("error")
        state = _parallel_state(instance)
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


@dataclass(frozen=True)
class _SttTurn:
    """A user turn the audio recognition committed from the parallel STT's words."""

    activity: Any
    transcript: str


# module state: the user message of a committed turn is added from a task on_end_of_turn
# starts; the task inherits the context, and the message carries nothing of the turn
_STT_TURN: contextvars.ContextVar[_SttTurn | None] = contextvars.ContextVar(
    "livekit_ext_parallel_stt_turn", default=None
)


@when_active(FEATURE)
def _on_end_of_turn(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
    """A turn the audio recognition commits (session close, manual commit) carries the STT's
    words; a transcribing realtime model makes the user's messages, so they must not become
    one. A model that does not transcribe leaves them to the STT, as it does without us."""
    turn = None
    with hook_errors_logged("reading a turn committed next to a realtime model"):
        info = args[0] if args else kwargs.get("info")
        transcript = getattr(info, "new_transcript", None)
        if transcript and _parallel_state(instance) is not None and _transcribes(instance):
            turn = _SttTurn(instance, transcript)
    if turn is None:
        return wrapped(*args, **kwargs)
    # installed with the first such turn: sessions without a parallel STT pay nothing per item
    install_when_needed(FEATURE, CONVERSATION_ITEM_ADDED, _conversation_item_added)
    token = _STT_TURN.set(turn)  # the tasks it starts inherit it
    try:
        return wrapped(*args, **kwargs)
    finally:
        _STT_TURN.reset(token)


def _conversation_item_added(original: Callable[..., Any]) -> Callable[..., Any]:
    def _conversation_item_added(self: Any, *args: Any, **kwargs: Any) -> Any:
        """Within such a turn, its user message is withdrawn; everything else goes through."""
        turn = _STT_TURN.get()
        if turn is not None and FEATURE in ACTIVE:
            message = args[0] if args else kwargs.get("message")
            withdrawn = False
            with hook_errors_logged("keeping a parallel STT transcript out of the chat context"):
                withdrawn = _withdraw(turn, message)
            if withdrawn:
                return None
        return original(self, *args, **kwargs)

    return _conversation_item_added


def _withdraw(turn: _SttTurn, message: Any) -> bool:
    """Take the turn's user message back out of the agent's chat context; True if it was."""
    if getattr(message, "role", None) != "user" or message.text_content != turn.transcript:
        return False
    items = turn.activity._agent._chat_ctx.items
    for index in range(len(items) - 1, -1, -1):
        if items[index] is message:
            del items[index]
            break
    logger.debug(
        "livekit_ext: the parallel STT's transcript of a committed turn is not added as a user "
        "message; the realtime model's own transcript is"
    )
    return True


@when_active(FEATURE)
def _unless_forwarded(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
    """Upstream's own listeners (room transcription, IVR) keep seeing what they saw before."""
    if _FORWARDING.get():
        return None
    return wrapped(*args, **kwargs)


# -- keeping the STT alive on releases that do not recreate it -----------------------------


def _restart_wanted(session: Any) -> bool:
    """Only a parallel STT of a live session is restarted; anything else fails as upstream's."""
    if FEATURE not in ACTIVE or session is None or _enabled_state(session) is None:
        return False
    if getattr(session, "_closing", False) or getattr(session, "_closing_task", None):
        return False
    return _is_realtime(getattr(session, "llm", None))


async def _restarting(run: Callable[[bool], Awaitable[Any]], session: Any) -> Any:
    """Run the STT again after a connection failure, like 1.6+ recreates its stream (other
    errors end it, as there)."""
    from livekit.agents import APIError

    restarted = False
    while True:
        try:
            return await run(restarted)
        except APIError as e:
            if not _restart_wanted(session):
                raise
            logger.warning(
                "livekit_ext: the parallel STT stream stopped on %r; restarting it in %ss",
                e,
                _RESTART_BACKOFF,
            )
        import asyncio  # livekit's own import; ``import livekit_ext`` alone stays cheap

        await asyncio.sleep(_RESTART_BACKOFF)
        if not _restart_wanted(session):
            return None
        restarted = True


@when_active(FEATURE)
def _stt_task(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
    """1.4.x: ``AudioRecognition._stt_task(stt_node, audio_input, previous_task)``."""

    def run(restarted: bool) -> Awaitable[Any]:
        if restarted and len(args) >= 3:
            args_now = (*args[:2], None, *args[3:])  # the task it waited for is long gone
            return cast(Awaitable[Any], wrapped(*args_now, **kwargs))
        return cast(Awaitable[Any], wrapped(*args, **kwargs))

    return _restarting(run, getattr(instance, "_session", None))


@when_active(FEATURE)
def _update_stt(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
    """1.5.x, early 1.6.x: the STT pipeline's pump is created in here; tell it whose session
    it serves."""
    token = _PIPELINE_SESSION.set(getattr(instance, "_session", None))
    try:
        return wrapped(*args, **kwargs)
    finally:
        _PIPELINE_SESSION.reset(token)


@when_active(FEATURE)
def _stt_pump(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
    """1.5.x: ``_STTPipeline._stt_pump()`` ends for good on a failure; run it again."""
    return _restarting(lambda _: wrapped(*args, **kwargs), _PIPELINE_SESSION.get())


# -- the feature ---------------------------------------------------------------------------

_AR = tp.RECOGNITION
INTERIM = tp.wrap(
    "an STT interim a transcribing realtime model drops", f"{tp.ACTIVITY}.on_interim_transcript"
)
FINAL = tp.wrap(
    "an STT final a transcribing realtime model drops", f"{tp.ACTIVITY}.on_final_transcript"
)
ON_ERROR = tp.wrap("a parallel STT's fatal error becomes recoverable", f"{tp.ACTIVITY}._on_error")
END_OF_TURN = tp.wrap("a turn committed from the STT's words", f"{tp.ACTIVITY}.on_end_of_turn")
CONVERSATION_ITEM_ADDED = tp.wrap(
    "keep the STT's committed words out of the chat context (wrapped at the first such turn)",
    f"{tp.SESSION}._conversation_item_added",
)
FUNNEL = tp.call(
    "emit a forwarded STT transcript through the funnel", f"{tp.SESSION}._user_input_transcribed"
)
STT_EVENT = tp.wrap("the STT's START/END_OF_SPEECH", f"{_AR}:AudioRecognition._on_stt_event")
NATIVE_RESTART = tp.read(
    "1.6.6+: upstream recreates a failed STT stream itself",
    f"{_AR}:_STT_RECONNECT_INTERVAL",
    optional=True,
)
PIPELINE_FACTORY = tp.wrap(
    "1.5.2-1.6.5: the STT pipeline's pump is created here",
    f"{_AR}:AudioRecognition.update_stt",
    f"{_AR}:AudioRecognition._update_stt",
    optional=True,
)
PIPELINE = tp.read("1.5.2-1.6.5: the STT pipeline", f"{_AR}:_STTPipeline", optional=True)
STT_PUMP = tp.wrap(
    "1.5.2-1.6.5: a failed STT pump is run again", f"{_AR}:_STTPipeline._stt_pump", optional=True
)
STT_TASK = tp.wrap(
    "1.4-1.5.1: a failed STT task is run again", f"{_AR}:AudioRecognition._stt_task", optional=True
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
ACTIVITY_AGENT = tp.attr(
    "the agent whose chat context holds the user messages", f"{tp.ACTIVITY}._agent"
)
SWITCH = tp.read(
    "the patch series' own switch: native when present", f"{tp.SESSION}.parallel_stt", optional=True
)
RECOGNITION_SESSION = tp.attr(
    "the audio recognition's session: its STT events belong to it",
    f"{_AR}:AudioRecognition._session",
)
CLOSING = tp.attr(
    "a closing session's STT is not restarted",
    f"{tp.SESSION}._closing",
    f"{tp.SESSION}._closing_task",
    optional=True,
)
CHAT_CONTEXT = tp.attr(
    "the chat context an STT-committed user message is taken back out of",
    "livekit.agents.voice.agent:Agent._chat_ctx",
)


def _native() -> bool:
    """Whether upstream forwards a parallel STT's transcripts itself: ``AgentSession`` has the
    ``parallel_stt`` switch (read/write, before or after ``start``) of the upstream patch."""
    switch = inspect.getattr_static(FUNNEL.owner(importing=True), SWITCH.name, None)
    return isinstance(switch, property) and switch.fset is not None


def _restart_mode() -> RestartMode:
    if NATIVE_RESTART.resolvable(importing=True):
        return "native"
    if PIPELINE.resolvable(importing=True):
        return "pipeline" if STT_PUMP.resolvable() and PIPELINE_FACTORY.resolvable() else "none"
    return "task" if STT_TASK.resolvable() else "none"


_RESTART_REASONS: Mapping[RestartMode, str] = {
    "native": "upstream recreates a failed STT stream",
    "pipeline": "a failed STT pipeline is restarted",
    "task": "a failed STT task is restarted",
    "none": "a failed STT stays stopped (no restart point found)",
}


class ParallelSTT(Feature):
    name = FEATURE
    description = "STT transcripts next to a realtime model's, matched to its utterances"
    requires = (_funnel.IDENTITY,)
    touchpoints = tp.declared(globals())

    def probe(self) -> Probe:
        if _native():
            return Probe("native", "AgentSession.parallel_stt forwards the STT's transcripts")
        return Probe(
            "patchable",
            "forwards the STT transcripts a transcribing realtime model drops; "
            + _RESTART_REASONS[_restart_mode()],
        )

    def install(self, patcher: Patcher) -> None:
        patcher.wrap(INTERIM, _transcript_hook(is_final=False))
        patcher.wrap(FINAL, _transcript_hook(is_final=True))
        patcher.wrap(ON_ERROR, _on_error)
        patcher.wrap(END_OF_TURN, _on_end_of_turn)
        patcher.wrap(STT_EVENT, _on_stt_event)
        mode = _restart_mode()
        if mode == "pipeline":
            patcher.wrap(PIPELINE_FACTORY, _update_stt)
            patcher.wrap(STT_PUMP, _stt_pump)
        elif mode == "task":
            patcher.wrap(STT_TASK, _stt_task)
        for listener in UPSTREAM_LISTENERS:
            if listener.resolvable(importing=True):
                patcher.wrap(listener, _unless_forwarded)
            else:
                logger.debug("livekit_ext: %s not found; no guard needed", listener)
