"""Any realtime plugin: the activity's realtime handlers say where a transcript was born.

``AgentActivity`` hands each realtime transcript (and the empty interim at speech stop) to
the session's funnel from its handlers; the item comes from the event, or from the speech
state of the activity's realtime session. The framework's generic speech events are the
speech signal of plugins with no provider-specific source; the audio pushed to the model is
the timeline that maps provider offsets onto the wall clock.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

from .. import _touchpoints as tp
from .._funnel import FUNNEL, IDENTITY, Origin, run_born
from .._speech import speech_of
from .._wrapping import (
    ACTIVE,
    Patcher,
    hook_errors_logged,
    hook_failed,
    observe_before_listeners,
    when_active,
)
from ..transcripts import record_from_start
from . import openai
from .realtime_speech import REALTIME, RealtimeSpeech, of_activity

SESSION_START = tp.wrap(
    "a session started with the extension in effect (else: a warning, not silence)",
    f"{tp.SESSION}.start",
)
SESSION_STARTED = tp.attr(
    "transcripts(): has the session started (the log may have missed some)",
    f"{tp.SESSION}._started",
    optional=True,
)
TRANSCRIPTION = tp.wrap(
    "a realtime transcript: its item id",
    f"{tp.ACTIVITY}._on_input_audio_transcription_completed",
)
SPEECH_STOPPED = tp.wrap(
    "the empty interim at speech stop: its item", f"{tp.ACTIVITY}._on_input_speech_stopped"
)
SPEECH_STARTED = tp.wrap(
    "any realtime plugin's speech start (where no provider-specific source is better)",
    f"{tp.ACTIVITY}._on_input_speech_started",
)
ACTIVITY_START = tp.wrap(
    "an activity's realtime session serves its AgentSession: speech signals go there",
    f"{tp.ACTIVITY}.start",
)
PUSH_AUDIO = tp.wrap(
    "audio pushed to the realtime model: the offset timeline", f"{tp.ACTIVITY}.push_audio"
)
RT_SESSION = tp.attr("the activity's realtime session", f"{tp.ACTIVITY}._rt_session")
ACTIVITY_SESSION = tp.attr("the activity's AgentSession", f"{tp.ACTIVITY}._session")
TURN_STARTED_AT = tp.attr(
    "1.6.10+: where upstream places the user ChatMessage (a start for an item none was seen for)",
    "livekit.agents.llm.realtime:InputTranscriptionCompleted.turn_started_at",
    optional=True,
)
REALTIME_SESSION_INIT = tp.wrap(
    "each realtime session: its speech state (Azure Voice Live: observe its SDK events)",
    "livekit.agents.llm.realtime:RealtimeSession.__init__",
)


def install(patcher: Patcher) -> None:
    patcher.wrap(SESSION_START, _session_start)
    patcher.wrap_inline(TRANSCRIPTION, _transcription)
    patcher.wrap_inline(SPEECH_STOPPED, _speech_stopped)
    patcher.wrap_inline(SPEECH_STARTED, _speech_started)
    patcher.wrap(ACTIVITY_START, _activity_start)
    patcher.wrap_inline(PUSH_AUDIO, _push_audio)
    patcher.wrap(REALTIME_SESSION_INIT, _realtime_session_init)


@when_active(IDENTITY)
def _session_start(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
    with hook_errors_logged("marking a session started with the extension"):
        funnel = FUNNEL.of(instance)
        funnel.started_patched = funnel.set_up = True
        record_from_start(instance)
    return wrapped(*args, **kwargs)


_SPEECH = REALTIME.attr  # read inline: the state exists from the realtime session's __init__


def _born_in_realtime(
    failure: str, item_of: Callable[[RealtimeSpeech, Any], str | None]
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """An activity handler that emits realtime transcripts: they were born in its realtime
    session, for the item ``item_of(speech, event)`` names."""

    def build(original: Callable[..., Any]) -> Callable[..., Any]:
        def handler(self: Any, *args: Any, **kwargs: Any) -> Any:
            if IDENTITY not in ACTIVE:
                return original(self, *args, **kwargs)
            session = origin = None
            try:
                session = self._session
                speech = getattr(getattr(self, "_rt_session", None), _SPEECH, None)
                if speech is not None:
                    ev = args[0] if args else kwargs.get("ev")
                    origin = Origin("realtime", speech, item_of(speech, ev))
            except Exception:
                hook_failed(failure)
            return run_born(session, origin, original, self, *args, **kwargs)

        return handler

    return build


def _transcribed_item(speech: RealtimeSpeech, ev: Any) -> str | None:
    """A realtime transcript: the item it names owns the speech start waiting for it."""
    item_id = getattr(ev, "item_id", None) or None
    if item_id is not None:
        if item_id not in speech.starts:
            speech.bind_pending(item_id)
            _upstream_turn_start(speech, item_id, ev)
        speech.transcribing_item = item_id
    return item_id


def _upstream_turn_start(speech: RealtimeSpeech, item_id: str, ev: Any) -> None:
    """Where no start was seen for the item, upstream's own start of the turn is it, on
    releases that report one (``InputTranscriptionCompleted.turn_started_at``, 1.6.10+: what
    places the user ``ChatMessage``), rather than the first transcript's arrival."""
    reported = getattr(ev, "turn_started_at", None)
    if item_id not in speech.starts and isinstance(reported, float):
        speech.starts[item_id] = min(reported, time.time())


def _stopped_item(speech: RealtimeSpeech, ev: Any) -> str | None:
    """The empty interim at speech stop: the item whose speech stopped."""
    if speech.provider is not None:
        return speech.last_stopped_item
    # no better source: the framework's own event, which names no item; the speech that
    # stops is the one whose transcripts arrived since it started
    speech.signal("stopped", None, time.time())
    return speech.transcribing_item


_transcription = _born_in_realtime("reading a realtime transcription", _transcribed_item)
_speech_stopped = _born_in_realtime("reading a realtime speech stop", _stopped_item)


def _speech_started(original: Callable[..., Any]) -> Callable[..., Any]:
    def _on_input_speech_started(self: Any, *args: Any, **kwargs: Any) -> Any:
        """Any realtime plugin's ``input_speech_started``: a speech start, where the session
        has no provider-specific source (which would know the item id, and know it as early)."""
        if IDENTITY in ACTIVE:
            try:
                speech = getattr(getattr(self, "_rt_session", None), _SPEECH, None)
                if speech is not None and speech.provider is None:
                    speech.transcribing_item = None  # a new utterance: its id comes later
                    speech.signal("started", None, time.time())
            except Exception:
                hook_failed("reading a realtime speech start")
        return original(self, *args, **kwargs)

    return _on_input_speech_started


@when_active(IDENTITY)
async def _activity_start(
    wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any
) -> Any:
    """The activity's realtime session now serves this AgentSession: its speech starts and
    stops go to the session's subscribers (``Utterances``)."""
    result = await wrapped(*args, **kwargs)
    with hook_errors_logged("linking a realtime session to its AgentSession"):
        if (speech := of_activity(instance)) is not None:
            speech.signals = speech_of(instance._session)
    return result


def _push_audio(original: Callable[..., Any]) -> Callable[..., Any]:
    def push_audio(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = original(self, *args, **kwargs)
        if IDENTITY in ACTIVE:
            try:  # per audio frame pushed: try/hook_failed, not a context manager
                frame = args[0] if args else kwargs.get("frame")
                speech = getattr(getattr(self, "_rt_session", None), _SPEECH, None)
                if frame is not None and speech is not None:
                    speech.timeline.pushed(float(frame.duration))
            except Exception:
                hook_failed("recording pushed audio")
        return result

    return push_audio


@when_active(IDENTITY)
def _realtime_session_init(
    wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any
) -> Any:
    """Every realtime session gets its speech state now (the per-event hooks only read it)."""
    result = wrapped(*args, **kwargs)
    with hook_errors_logged("attaching to a realtime session"):
        speech = REALTIME.of(instance)
        if type(instance).__module__.startswith(openai.VOICE_LIVE_MODULE):
            # an observer on this session's emit, not a listener: the emitter would inspect
            # a listener's signature at every event
            observe_before_listeners(
                instance,
                "azure_server_event_received",
                functools.partial(openai.on_voice_live_event, speech),
            )
    return result
