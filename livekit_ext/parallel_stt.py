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
import importlib
import inspect
import logging
import math
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Literal, cast
from weakref import WeakKeyDictionary

from . import transcript_identity
from ._registry import ENGINE, Feature, Patcher, Probe, hook_errors_logged, when_active
from ._tracks import RealtimeTrack, new_item_id, realtime_track
from .identity import identity
from .transcripts import TranscriptLog, _check_window, session_log

logger = logging.getLogger("livekit_ext")

FEATURE = "parallel_stt"

_MAX_RECENT_ITEMS = 16  # realtime utterances considered when matching an STT one by time
_MAX_COMPLETED = 512
_RESTART_BACKOFF = 0.5  # what 1.6+ waits before recreating a failed STT stream
_MAX_QUEUED_UTTERANCES = 8
_MIN_LAG_ALLOWANCE = 1.5  # seconds an ended utterance may wait for its first transcript
_MAX_LAG_ALLOWANCE = 10.0

RestartMode = Literal["native", "pipeline", "task", "none"]


# -- per-session state ---------------------------------------------------------------------


@dataclass
class _SttUtterance:
    """One utterance as the parallel STT heard it, from START_OF_SPEECH to END_OF_SPEECH."""

    start: float
    end: float | None = None
    heard: bool = False  # a transcript was attributed to it
    fresh_id: str | None = None

    def interval(self, at: float) -> tuple[float, float]:
        """``[start, end]``; an utterance still open (or never ended) runs until ``at``."""
        return self.start, max(self.end if self.end is not None else at, self.start)


class _SttUtterances:
    """Which utterance of the parallel STT a transcript belongs to, robust to a lagging STT.

    The STT's own START/END_OF_SPEECH arrive on time while its transcripts may trail by
    seconds, so utterances queue up until their final arrives; a transcript belongs to the
    oldest one waiting. An utterance ended long ago that never got a transcript was noise
    (a VAD-driven STT often recognises nothing) and is dropped. Without START/END events an
    utterance starts at its first transcript and ends at its final.
    """

    def __init__(self) -> None:
        self._queue: deque[_SttUtterance] = deque()
        self.lag = 0.0  # how far the last final trailed its end of speech

    def __len__(self) -> int:
        return len(self._queue)

    def reset(self) -> None:
        """The STT failed: what it heard before will never be transcribed."""
        self._queue.clear()

    def speech_started(self, at: float) -> None:
        if self._queue and self._queue[-1].end is None:
            return  # still speaking: one utterance
        self._queue.append(_SttUtterance(start=at))
        while len(self._queue) > _MAX_QUEUED_UTTERANCES:
            self._queue.popleft()

    def speech_ended(self, at: float) -> None:
        if self._queue and self._queue[-1].end is None:
            utterance = self._queue[-1]
            utterance.end = max(at, utterance.start)

    def current(self, at: float) -> _SttUtterance:
        """The utterance a transcript arriving at ``at`` belongs to."""
        allowance = min(max(_MIN_LAG_ALLOWANCE, 2 * self.lag), _MAX_LAG_ALLOWANCE)
        queue = self._queue
        while len(queue) > 1 and not queue[0].heard and at - (queue[0].end or at) > allowance:
            queue.popleft()  # noise: ended long ago and nothing was ever recognised in it
        if not queue:
            queue.append(_SttUtterance(start=at))
        queue[0].heard = True
        return queue[0]

    def finalized(self, utterance: _SttUtterance, at: float) -> None:
        """A final closed ``utterance``; one still open continues where the final ended."""
        if utterance.end is not None:
            self.lag = max(0.0, at - utterance.end)
        if utterance.end is not None or len(self._queue) > 1:
            if self._queue and self._queue[0] is utterance:
                self._queue.popleft()
        else:
            utterance.start = max(utterance.start, at - self.lag)


class _Completed(OrderedDict[str, float]):
    def note(self, item_id: str, at: float) -> None:
        self.setdefault(item_id, at)
        while len(self) > _MAX_COMPLETED:
            self.popitem(last=False)


@dataclass
class _State:
    log: TranscriptLog
    enabled: bool = False
    utterances: _SttUtterances = field(default_factory=_SttUtterances)
    completed: _Completed = field(default_factory=_Completed)
    """Realtime item -> when its final transcript arrived (an end for providers with no stop)."""

    def note_transcribed(self, ev: Any) -> None:
        """A realtime final went out: when it completed is an end for matching by time."""
        if ev.is_final:
            ident = identity(ev)
            if ident.source == "realtime" and ident.item_id is not None:
                self.completed.note(ident.item_id, ev.created_at)


_states: WeakKeyDictionary[Any, _State] = WeakKeyDictionary()


def _state_of(session: Any, window: int | None = None) -> _State:
    state = _states.get(session)
    if state is None:
        state = _states[session] = _State(log=session_log(session, window=window))
    elif window is not None:
        state.log.resize(window)
    return state


def _enabled_state(session: Any) -> _State | None:
    state = _states.get(session)
    return state if state is not None and state.enabled else None


# -- public API ----------------------------------------------------------------------------


def enable_parallel_stt(session: Any, *, window: int = 256) -> TranscriptLog:
    """Forward the ``stt=`` transcripts a realtime ``llm=`` drops; before or after ``start``.

    Returns the session's :class:`TranscriptLog` (also reachable with ``transcripts``).
    Idempotent; a second call only changes ``window``.
    """
    _check_window(window)
    state = _state_of(session, window)
    if not state.enabled:
        state.enabled = True
        # this session's transcripts only: other sessions' funnel runs no parallel STT hook
        transcript_identity.FUNNEL.add_stamper(session, _stamp_upstreams_transcript)
        transcript_identity.FUNNEL.add_observer(session, state.note_transcribed)
    if _native():
        session.parallel_stt = True
    elif not ENGINE.is_active(FEATURE):
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
    return state.log


# -- correlation ---------------------------------------------------------------------------


def _event_time(ev: Any) -> float:
    now = time.time()
    created = getattr(ev, "created_at", None)
    return min(created, now) if isinstance(created, (int, float)) and created > 0 else now


def _provider_time(value: Any, ceiling: float) -> float | None:
    return min(float(value), ceiling) if isinstance(value, (int, float)) and value > 0 else None


def _overlapping_item(
    track: RealtimeTrack, completed: _Completed, start: float, end: float
) -> str | None:
    """The recent realtime utterance that overlaps ``[start, end]`` the most, if any."""
    best: str | None = None
    best_overlap = -math.inf
    later_start = math.inf
    for item_id, item_start in islice(reversed(track.starts.items()), _MAX_RECENT_ITEMS):
        item_end = track.stops.get(item_id) or completed.get(item_id) or later_start
        later_start = min(later_start, item_start)
        if item_end < start:
            break  # newest first: every older utterance ended before this one
        if item_start > end:
            continue
        overlap = min(end, item_end) - max(start, item_start)
        if overlap > best_overlap:
            best, best_overlap = item_id, overlap
    return best


def _identify(activity: Any, state: _State, stt_ev: Any, *, is_final: bool) -> tuple[str, float]:
    """The ``item_id`` and speech start of the realtime utterance the STT one overlaps, else
    the STT utterance's own; a final closes the STT utterance."""
    at = _event_time(stt_ev)
    utterance = state.utterances.current(at)
    start, end = utterance.interval(at)
    if is_final and (said := _provider_time(getattr(stt_ev, "speech_end_time", None), at)):
        end = max(min(end, said), start)
    item_id: str | None = None
    started = start
    rt_session = getattr(activity, "_rt_session", None)
    if rt_session is not None:
        track = realtime_track(rt_session)
        item_id = _overlapping_item(track, state.completed, start, end)
        if item_id is not None:
            started = track.starts.get(item_id, start)
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


_HOOK: contextvars.ContextVar[_HookCall | None] = contextvars.ContextVar(
    "livekit_ext_parallel_stt_hook", default=None
)
_FORWARDING: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "livekit_ext_parallel_stt_forwarding", default=False
)
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
        token = _HOOK.set(call)
        try:
            result = wrapped(*args, **kwargs)
        finally:
            _HOOK.reset(token)
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
        out = transcript_identity.event_class().model_construct(
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


def _stamp_upstreams_transcript(ev: Any) -> None:
    """An STT transcript upstream forwards itself (a realtime model that does not transcribe)
    gets the parallel identity at the funnel, before anything enriches or observes it."""
    call = _HOOK.get()
    if call is not None and not call.forwarded:
        call.forwarded = True
        with hook_errors_logged("stamping a parallel STT transcript"):
            _stamp(call, ev)


@when_active(FEATURE)
def _on_stt_event(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
    """See the STT's START/END_OF_SPEECH, which reach no hook while a realtime model leads."""
    try:
        state = _enabled_state(getattr(instance, "_session", None))
        if state is not None:
            ev = args[0] if args else kwargs.get("ev")
            kind = getattr(ev, "type", None)
            if kind == "start_of_speech":  # a str enum in every release
                at = _event_time(ev)
                started = _provider_time(getattr(ev, "speech_start_time", None), at)
                state.utterances.speech_started(started or at)
            elif kind == "end_of_speech":
                at = _event_time(ev)
                ended = _provider_time(getattr(ev, "speech_end_time", None), at)
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
    from livekit.agents.voice.agent_session import AgentSession

    ENGINE.wrap_inline_when_needed(
        FEATURE, AgentSession, "_conversation_item_added", _conversation_item_added
    )
    token = _STT_TURN.set(turn)  # the tasks it starts inherit it
    try:
        return wrapped(*args, **kwargs)
    finally:
        _STT_TURN.reset(token)


def _conversation_item_added(original: Callable[..., Any]) -> Callable[..., Any]:
    def _conversation_item_added(self: Any, *args: Any, **kwargs: Any) -> Any:
        """Within such a turn, its user message is withdrawn; everything else goes through."""
        turn = _STT_TURN.get()
        if turn is not None and FEATURE in ENGINE.active:
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
    if not ENGINE.is_active(FEATURE) or session is None or _enabled_state(session) is None:
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


def _native() -> bool:
    """Whether upstream forwards a parallel STT's transcripts itself: ``AgentSession`` has the
    ``parallel_stt`` switch (read/write, before or after ``start``) of the upstream patch."""
    from livekit.agents.voice.agent_session import AgentSession

    switch = inspect.getattr_static(AgentSession, "parallel_stt", None)
    return isinstance(switch, property) and switch.fset is not None


def _restart_mode() -> RestartMode:
    from livekit.agents.voice import audio_recognition as ar

    if hasattr(ar, "_STT_RECONNECT_INTERVAL"):
        return "native"
    pipeline = getattr(ar, "_STTPipeline", None)
    if pipeline is not None:
        has_hooks = hasattr(pipeline, "_stt_pump") and _pipeline_factory(ar) is not None
        return "pipeline" if has_hooks else "none"
    return "task" if hasattr(ar.AudioRecognition, "_stt_task") else "none"


def _pipeline_factory(ar: Any) -> str | None:
    """The AudioRecognition method that creates the STT pipeline: ``update_stt`` (1.5.2 to
    1.6.4) or ``_update_stt`` (1.6.5 on; from 1.6.6 upstream recreates failed streams)."""
    return next((n for n in ("update_stt", "_update_stt") if hasattr(ar.AudioRecognition, n)), None)


_RESTART_REASONS: dict[RestartMode, str] = {
    "native": "upstream recreates a failed STT stream",
    "pipeline": "a failed STT pipeline is restarted",
    "task": "a failed STT task is restarted",
    "none": "a failed STT stays stopped (no restart point found)",
}


class ParallelSTT(Feature):
    name = FEATURE
    description = "STT transcripts next to a realtime model's, matched to its utterances"
    requires = (transcript_identity.FEATURE,)

    def probe(self) -> Probe:
        from livekit.agents.voice.agent_activity import AgentActivity
        from livekit.agents.voice.agent_session import AgentSession
        from livekit.agents.voice.audio_recognition import AudioRecognition

        if _native():
            return Probe("native", "AgentSession.parallel_stt forwards the STT's transcripts")
        needed = [
            (AgentActivity, "on_interim_transcript"),
            (AgentActivity, "on_final_transcript"),
            (AgentActivity, "_on_error"),
            (AgentActivity, "on_end_of_turn"),
            (AgentSession, "_conversation_item_added"),
            (AgentSession, "_user_input_transcribed"),
            (AudioRecognition, "_on_stt_event"),
        ]
        missing = [f"{owner.__name__}.{name}" for owner, name in needed if not hasattr(owner, name)]
        if missing:
            return Probe("unsupported", f"missing {', '.join(missing)}")
        return Probe(
            "patchable",
            "forwards the STT transcripts a transcribing realtime model drops; "
            + _RESTART_REASONS[_restart_mode()],
        )

    def install(self, patcher: Patcher) -> None:
        from livekit.agents.voice import audio_recognition as ar
        from livekit.agents.voice.agent_activity import AgentActivity

        patcher.wrap(AgentActivity, "on_interim_transcript", _transcript_hook(is_final=False))
        patcher.wrap(AgentActivity, "on_final_transcript", _transcript_hook(is_final=True))
        patcher.wrap(AgentActivity, "_on_error", _on_error)
        patcher.wrap(AgentActivity, "on_end_of_turn", _on_end_of_turn)
        patcher.wrap(ar.AudioRecognition, "_on_stt_event", _on_stt_event)
        mode = _restart_mode()
        if mode == "pipeline":
            patcher.wrap(ar.AudioRecognition, _pipeline_factory(ar) or "update_stt", _update_stt)
            patcher.wrap(ar._STTPipeline, "_stt_pump", _stt_pump)
        elif mode == "task":
            patcher.wrap(ar.AudioRecognition, "_stt_task", _stt_task)
        self._install_listener_guards(patcher)

    def _install_listener_guards(self, patcher: Patcher) -> None:
        for module_name, class_name in _UPSTREAM_LISTENERS:
            try:
                owner = getattr(importlib.import_module(module_name), class_name)
            except (ImportError, AttributeError):
                logger.debug(
                    "livekit_ext: %s.%s not found; no guard needed", module_name, class_name
                )
                continue
            if hasattr(owner, "_on_user_input_transcribed"):
                patcher.wrap(owner, "_on_user_input_transcribed", _unless_forwarded)


_UPSTREAM_LISTENERS = (
    # publishes the user's transcript to the room: it stays the realtime model's
    ("livekit.agents.voice.room_io.room_io", "RoomIO"),
    # its loop detection may generate a reply from user finals
    ("livekit.agents.voice.ivr.ivr_activity", "IVRActivity"),
)
