"""STT pipelines: one id per user turn, shared by its transcripts and its user ChatMessage.

A turn opens at the STT's START_OF_SPEECH or the local VAD's start of speech (its id is made
then, so ``Utterances`` can start it), or at its first transcript; it closes when the turn is
committed, and the user ``ChatMessage`` built for it takes the same id.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import _touchpoints as tp
from .._funnel import IDENTITY, Origin, run_born
from .._speech import speech_of
from .._state import Attached, BoundedMap
from .._wrapping import Patcher, hook_errors_logged, hook_failed, install_when_needed, when_active
from .realtime_speech import of_activity

END_OF_SPEECH = tp.wrap("an STT pipeline's end of speech", f"{tp.ACTIVITY}.on_end_of_speech")
INTERIM = tp.wrap("an STT pipeline interim", f"{tp.ACTIVITY}.on_interim_transcript")
FINAL = tp.wrap("an STT pipeline final", f"{tp.ACTIVITY}.on_final_transcript")
START_OF_SPEECH = tp.wrap("the local VAD's start of speech", f"{tp.ACTIVITY}.on_start_of_speech")
END_OF_TURN = tp.wrap(
    "an STT turn ends: its user message takes the turn's id", f"{tp.ACTIVITY}.on_end_of_turn"
)
PREEMPTIVE = tp.wrap(
    "a preemptive reply's user message takes the turn's id",
    f"{tp.ACTIVITY}.on_preemptive_generation",
    optional=True,
)
CHAT_MESSAGE_INIT = tp.wrap(
    "a user ChatMessage of an STT turn takes the turn's id (wrapped at the first STT turn)",
    "livekit.agents.llm.chat_context:ChatMessage.__init__",
)
SHORTUUID = tp.call("fresh utterance ids shaped like upstream's", "livekit.agents.utils:shortuuid")


def install(patcher: Patcher) -> None:
    patcher.wrap(END_OF_SPEECH, _end_of_speech)
    patcher.wrap(INTERIM, _transcript)
    patcher.wrap(FINAL, _transcript)
    patcher.wrap(START_OF_SPEECH, _start_of_speech)
    patcher.wrap(END_OF_TURN, _end_of_turn)
    if PREEMPTIVE.name in vars(PREEMPTIVE.owner(importing=True)):
        patcher.wrap(PREEMPTIVE, _preemptive_generation)


def new_item_id() -> str:
    """A fresh utterance id, shaped like the ids upstream gives chat items."""
    from livekit.agents import utils

    return str(utils.shortuuid("item_"))


class SttTurns:
    """One session's STT turns: the current one's id, and each turn's speech start."""

    def __init__(self) -> None:
        self.starts: BoundedMap[float] = BoundedMap()
        self.current_turn: str | None = None
        self._pending_vad_start: float | None = None
        self._turn_heard = False
        """The current turn has had a transcript (a turn opened at a start of speech has not)."""

    def speech_started(self, started: float) -> str:
        """Speech began (the STT's START_OF_SPEECH or the local VAD): the turn's id, now.

        A turn opened here that gets no transcript (noise) is taken over by the next start of
        speech, with the later start, exactly as a pending start is today.
        """
        if self.current_turn is None:
            self.current_turn = new_item_id()
            self._turn_heard = False
            self._pending_vad_start = None
            self.starts[self.current_turn] = started
        elif not self._turn_heard:
            self.starts[self.current_turn] = started
        else:
            self.starts.setdefault(self.current_turn, started)
        return self.current_turn

    def vad_speech_started(self, started: float) -> None:
        if self.current_turn is None:
            self._pending_vad_start = started
        else:
            self.starts.setdefault(self.current_turn, started)

    def turn_id(self) -> str:
        if self.current_turn is None:
            self.current_turn = new_item_id()
            if self._pending_vad_start is not None:
                self.starts[self.current_turn] = self._pending_vad_start
                self._pending_vad_start = None
        self._turn_heard = True
        return self.current_turn

    def end_turn(self) -> str | None:
        turn, self.current_turn = self.current_turn, None
        return turn

    def start_of(self, item_id: str, first_seen: float) -> float:
        return self.starts.setdefault(item_id, first_seen)


TURNS: Attached[SttTurns] = Attached("stt_turns", SttTurns)


@when_active(IDENTITY)
def _transcript(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
    session = origin = None
    try:
        session = instance._session
        turns = TURNS.of(session)
        origin = Origin("stt", turns, resolve_item=turns.turn_id)
    except Exception:
        hook_failed("reading an STT transcript")
    return run_born(session, origin, wrapped, *args, **kwargs)


@when_active(IDENTITY)
def _start_of_speech(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
    with hook_errors_logged("reading a VAD start of speech"):
        started = _vad_start_time(args, kwargs)
        if (speech := of_activity(instance)) is not None:
            TURNS.of(instance._session).vad_speech_started(started)
            speech.vad_speech_started(started)
        else:  # an STT pipeline: the turn (and its id) begins here
            item_id = TURNS.of(instance._session).speech_started(started)
            speech_of(instance._session).publish("started", item_id, started, "stt")
    return wrapped(*args, **kwargs)


@when_active(IDENTITY)
def _end_of_speech(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
    """An STT pipeline's end of speech (the STT's END_OF_SPEECH or the local VAD)."""
    with hook_errors_logged("reading an end of speech"):
        if of_activity(instance) is None:
            turn = TURNS.of(instance._session).current_turn
            if turn is not None:
                ev = args[0] if args else kwargs.get("ev")
                silence = getattr(ev, "silence_duration", None)
                stopped = time.time()
                if isinstance(silence, (int, float)) and silence > 0:
                    stopped -= silence
                speech_of(instance._session).publish("stopped", turn, stopped, "stt")
    return wrapped(*args, **kwargs)


def _vad_start_time(args: Any, kwargs: Any) -> float:
    explicit = kwargs.get("speech_start_time", args[1] if len(args) > 1 else None)
    if isinstance(explicit, (int, float)):
        return float(explicit)
    ev = args[0] if args else kwargs.get("ev")
    duration = getattr(ev, "speech_duration", None)
    now = time.time()
    return now - duration if isinstance(duration, (int, float)) and duration > 0 else now


# -- the turn's user ChatMessage -----------------------------------------------------------


@dataclass
class _OneShotId:
    """The id the next user ChatMessage of a committed turn takes; used at most once."""

    item_id: str
    used: bool = field(default=False)


# module state: the user ChatMessage of a committed turn is built in a task that
# on_end_of_turn starts; a ContextVar is the one thing that task inherits from the call
# (the message has no session to hold state on, and other tasks run between)
_TURN_MESSAGE_ID: contextvars.ContextVar[_OneShotId | None] = contextvars.ContextVar(
    "livekit_ext_turn_message_id", default=None
)


@when_active(IDENTITY)
def _end_of_turn(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
    """The turn ends: its user ChatMessage (built in a task started here) takes its id.

    Upstream returns False when it does not commit the turn (too few words to interrupt, a
    backchannel): the utterance then goes on, and so does its id.
    """
    box = None
    turns: SttTurns | None = None
    with hook_errors_logged("closing an STT turn"):
        turns = TURNS.of(instance._session)
        if turns.current_turn is not None:
            box = _turn_message_id(turns.current_turn)
    token = _TURN_MESSAGE_ID.set(box)
    try:
        committed = wrapped(*args, **kwargs)
    finally:
        _TURN_MESSAGE_ID.reset(token)
    if committed is not False and turns is not None and box is not None:
        with hook_errors_logged("closing an STT turn"):
            turns.end_turn()
    return committed


@when_active(IDENTITY)
def _preemptive_generation(
    wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any
) -> Any:
    box = None
    with hook_errors_logged("reading a preemptive generation"):
        if (turn := TURNS.of(instance._session).current_turn) is not None:
            box = _turn_message_id(turn)
    token = _TURN_MESSAGE_ID.set(box)
    try:
        return wrapped(*args, **kwargs)
    finally:
        _TURN_MESSAGE_ID.reset(token)


def _turn_message_id(item_id: str) -> _OneShotId:
    """The id the user ChatMessage built next takes. Only STT pipelines set one, so the
    ChatMessage hook that reads it is installed with the first (realtime sessions build a
    ChatMessage per utterance and would pay a call each for nothing)."""
    install_when_needed(IDENTITY, CHAT_MESSAGE_INIT, _chat_message_init)
    return _OneShotId(item_id)


def _chat_message_init(original: Callable[..., Any]) -> Callable[..., Any]:
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        box = _TURN_MESSAGE_ID.get()
        if box is not None and not box.used and kwargs.get("role") == "user" and "id" not in kwargs:
            box.used = True  # set only while the feature is in effect (by its own wrappers)
            kwargs = {**kwargs, "id": box.item_id}
        original(self, *args, **kwargs)

    return __init__
