"""Transcript identity: ``item_id``, ``speech_started_at`` and ``source`` on every
``UserInputTranscribedEvent``.

Context is captured where it is born (the OpenAI engines' speech handlers, Gemini's server
messages, the activity's realtime and STT handlers, the local VAD) and every event is enriched
at the one funnel they all pass through, ``AgentSession._user_input_transcribed``. Upstream's
own values (``item_id`` from 1.6.6 on) are never overwritten.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import sys
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, Protocol

from ._observe import observe_before_listeners
from ._registry import (
    ENGINE,
    Feature,
    Patcher,
    Probe,
    hook_errors_logged,
    hook_failed,
    is_wrapper,
    when_active,
)
from ._timeline import parse_duration
from ._tracks import (
    REALTIME_TRACK,
    SESSION_TRACK,
    PipelineTrack,
    RealtimeTrack,
    SessionTrack,
    SpeechSignal,
    pipeline_track,
    realtime_track,
    session_track,
    session_tracks,
)

logger = logging.getLogger("livekit_ext")

FEATURE = "transcript_identity"
_ACTIVE = ENGINE.active
"""``FEATURE in _ACTIVE``: whether the feature is in effect, read by the inline wrappers."""
Source = Literal["realtime", "stt"]


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


_FIELD_NAMES = ("item_id", "speech_started_at", "source")
_added_fields: list[str] = []
"""The identity fields the installed event class lacked, which the feature added (read off the
class at install): what a session started without the extension misses."""


class _Track(Protocol):
    """What a track knows of speech starts: those it has, and how to settle a new one."""

    @property
    def starts(self) -> Mapping[str, float]: ...

    def start_of(self, item_id: str, first_seen: float) -> float: ...


class Origin(NamedTuple):
    """Where the event now passing through the funnel was born.

    A tuple: the realtime hooks build one per event with ``_new_origin``, which runs no
    Python ``__new__``."""

    source: Source
    track: _Track
    item_id: str | None = None
    resolve_item: Callable[[], str | None] | None = None


_new_origin = tuple.__new__
"""``_new_origin(Origin, (source, track, item_id, resolve_item))``: ``Origin._make`` inline."""


@dataclass
class _OneShotId:
    """The id the next user ChatMessage of a committed turn takes; used at most once."""

    item_id: str
    used: bool = field(default=False)


_TURN_MESSAGE_ID: contextvars.ContextVar[_OneShotId | None] = contextvars.ContextVar(
    "livekit_ext_turn_message_id", default=None
)


# -- wrappers ------------------------------------------------------------------------------


Stamper = Callable[[Any], None]
Observer = Callable[[Any], None]


class Funnel:
    """``AgentSession._user_input_transcribed``, which every user transcript passes once.

    Code that needs a session's transcripts plugs in here, for that session only, instead of
    wrapping the funnel again or the session's ``emit`` (which every session event would
    pay): a *stamper* sees the event before it is enriched (parallel_stt names an STT
    transcript upstream emits itself), an *observer* sees it once enriched, before the
    session's listeners. Sessions with none pay nothing. Hooks are kept by the session's
    track, which lives on the session: an observer may hold the session (``Utterances``).
    """

    def carries(self, session: Any) -> bool:
        """Whether ``session``'s transcripts pass our funnel (else: observe its ``emit``)."""
        return ENGINE.is_active(FEATURE) and is_wrapper(
            getattr(type(session), "_user_input_transcribed", None)
        )

    def add_stamper(self, session: Any, stamper: Stamper) -> Callable[[], None]:
        track = session_track(session)
        track.stampers = (*track.stampers, stamper)
        return lambda: self._remove(track, stamper)

    def add_observer(self, session: Any, observer: Observer) -> Callable[[], None]:
        track = session_track(session)
        track.observers = (*track.observers, observer)
        return lambda: self._remove(track, observer)

    @staticmethod
    def _remove(track: SessionTrack, hook: Any) -> None:
        track.stampers = tuple(h for h in track.stampers if h is not hook)
        track.observers = tuple(h for h in track.observers if h is not hook)

    @staticmethod
    def _observers_to_emit() -> None:
        """The feature is reverted, the funnel is upstream's again: each session's observers
        go on seeing its transcripts, at its ``emit``."""
        for session in session_tracks.owners():
            track = session_tracks.get(session)
            if track is None or not track.observers:
                continue
            for observer in track.observers:
                if callable(getattr(session, "emit", None)):
                    observe_before_listeners(session, "user_input_transcribed", observer)
            track.observers = ()


FUNNEL = Funnel()


def _funnel(original: Callable[..., Any]) -> Callable[..., Any]:
    """The funnel: stamp, enrich from where the event was born, record, observe; then
    upstream's, which emits it to the session's listeners."""

    def _user_input_transcribed(self: Any, *args: Any, **kwargs: Any) -> Any:
        if args and FEATURE in _ACTIVE:
            ev = args[0]
            track: SessionTrack | None = None
            try:
                track = getattr(self, SESSION_TRACK, None) or session_track(self)
                for stamp in track.stampers:
                    stamp(ev)
                fields = ev.__dict__
                origin = track.origin
                if origin is not None:
                    # the identity fields, set as pydantic's __setattr__ sets a field without
                    # assignment validation (the event's config), minus its dispatch; upstream's
                    # own values win
                    fields_set = ev.__pydantic_fields_set__
                    item_id = fields.get("item_id")
                    if item_id is None:
                        item_id = origin.item_id
                        if item_id is None and origin.resolve_item is not None:
                            item_id = origin.resolve_item()
                        if item_id is None:
                            logger.debug("livekit_ext: a transcript has no item id to attach")
                        fields["item_id"] = item_id
                        fields_set.add("item_id")
                    if fields.get("source") is None:
                        fields["source"] = origin.source
                        fields_set.add("source")
                    if fields.get("speech_started_at") is None and item_id is not None:
                        created = ev.created_at
                        started = origin.track.starts.get(item_id)
                        if started is None:
                            started = origin.track.start_of(item_id, created)
                        fields["speech_started_at"] = started if started < created else created
                        fields_set.add("speech_started_at")
                elif not track.started_patched and fields.get("source") is None:
                    _warn_started_unpatched(self, track)
                if track.log_recorded_at_funnel:
                    track.log.record(ev)
            except Exception:
                hook_failed("enriching user_input_transcribed")
            for observe in track.observers if track is not None else ():
                try:
                    observe(ev)
                except Exception:
                    hook_failed("observing user_input_transcribed")
        return original(self, *args, **kwargs)

    return _user_input_transcribed


def _warn_started_unpatched(session: Any, track: Any) -> None:
    """A session started before the extension was applied: its realtime handlers were bound
    to upstream's originals at start, so its transcripts cannot be enriched. Say so, once,
    naming the fields this release lacks (a native ``item_id`` is still filled by upstream)."""
    if track.warned_unpatched or not _added_fields:
        return
    track.warned_unpatched = True
    lacking = "/".join(_added_fields)
    logger.warning(
        "livekit_ext: AgentSession %#x was started before livekit_ext was applied; its "
        "realtime transcripts carry no %s (this livekit-agents release lacks them). Import "
        "livekit_ext (or call livekit_ext.apply()) before session.start()",
        id(session),
        lacking,
    )


@when_active(FEATURE)
def _on_session_start(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
    with hook_errors_logged("marking a session started with the extension"):
        session_track(instance).started_patched = True
    return wrapped(*args, **kwargs)


def _rt_track_of(activity: Any) -> RealtimeTrack | None:
    """The track of the activity's realtime session, if it has one (one call: the hooks
    that run per realtime event read the track's attribute inline)."""
    rt_session = getattr(activity, "_rt_session", None)
    if rt_session is None:
        return None
    track: RealtimeTrack | None = getattr(rt_session, REALTIME_TRACK, None)
    return track if track is not None else realtime_track(rt_session)


def _on_realtime_transcription(original: Callable[..., Any]) -> Callable[..., Any]:
    def _on_input_audio_transcription_completed(self: Any, *args: Any, **kwargs: Any) -> Any:
        if FEATURE not in _ACTIVE:
            return original(self, *args, **kwargs)
        origin = session = None
        try:
            session = session_track(self._session)
            # the realtime session's track, made at its __init__; read inline (per event)
            track = getattr(getattr(self, "_rt_session", None), REALTIME_TRACK, None)
            if track is not None:
                ev = args[0] if args else kwargs.get("ev")
                item_id = getattr(ev, "item_id", None) or None
                if item_id is not None:
                    if item_id not in track.starts:
                        track.bind_pending(item_id)
                    track.transcribing_item = item_id
                origin = _new_origin(Origin, ("realtime", track, item_id, None))
        except Exception:
            hook_failed("reading a realtime transcription")
        if session is None:
            return original(self, *args, **kwargs)
        outer, session.origin = session.origin, origin
        try:
            return original(self, *args, **kwargs)
        finally:
            session.origin = outer

    return _on_input_audio_transcription_completed


def _on_realtime_speech_stopped(original: Callable[..., Any]) -> Callable[..., Any]:
    def _on_input_speech_stopped(self: Any, *args: Any, **kwargs: Any) -> Any:
        if FEATURE not in _ACTIVE:
            return original(self, *args, **kwargs)
        origin = session = None
        try:
            session = session_track(self._session)
            track = getattr(getattr(self, "_rt_session", None), REALTIME_TRACK, None)
            if track is not None:
                if track.provider is None:
                    # no better source: the framework's own event, which names no item; the
                    # speech that stops is the one whose transcripts arrived since it started
                    item_id = track.transcribing_item
                    track.signal("stopped", None, time.time())
                else:
                    item_id = track.last_stopped_item
                origin = _new_origin(Origin, ("realtime", track, item_id, None))
        except Exception:
            hook_failed("reading a realtime speech stop")
        if session is None:
            return original(self, *args, **kwargs)
        outer, session.origin = session.origin, origin
        try:
            return original(self, *args, **kwargs)
        finally:
            session.origin = outer

    return _on_input_speech_stopped


def _on_realtime_speech_started(original: Callable[..., Any]) -> Callable[..., Any]:
    def _on_input_speech_started(self: Any, *args: Any, **kwargs: Any) -> Any:
        """Any realtime plugin's ``input_speech_started``: a speech start, where the session
        has no provider-specific source (which would know the item id, and know it as early)."""
        if FEATURE in _ACTIVE:
            try:
                track = getattr(getattr(self, "_rt_session", None), REALTIME_TRACK, None)
                if track is not None and track.provider is None:
                    track.transcribing_item = None  # a new utterance: its id comes later
                    track.signal("started", None, time.time())
            except Exception:
                hook_failed("reading a realtime speech start")
        return original(self, *args, **kwargs)

    return _on_input_speech_started


@when_active(FEATURE)
async def _on_activity_start(
    wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any
) -> Any:
    """The activity's realtime session now serves this AgentSession: its speech starts and
    stops go to the session's subscribers (``Utterances``)."""
    result = await wrapped(*args, **kwargs)
    with hook_errors_logged("linking a realtime session to its AgentSession"):
        if (track := _rt_track_of(instance)) is not None:
            track.signals = session_track(instance._session).speech
    return result


@when_active(FEATURE)
def _on_stt_transcript(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
    origin = session = None
    try:
        session = session_track(instance._session)
        origin = Origin("stt", session.pipeline, resolve_item=session.pipeline.turn_id)
    except Exception:
        hook_failed("reading an STT transcript")
    if session is None:
        return wrapped(*args, **kwargs)
    outer, session.origin = session.origin, origin
    try:
        return wrapped(*args, **kwargs)
    finally:
        session.origin = outer


@when_active(FEATURE)
def _on_vad_start_of_speech(
    wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any
) -> Any:
    with hook_errors_logged("reading a VAD start of speech"):
        started = _vad_start_time(args, kwargs)
        if (track := _rt_track_of(instance)) is not None:
            pipeline_track(instance._session).vad_speech_started(started)
            track.vad_speech_started(started)
        else:  # an STT pipeline: the turn (and its id) begins here
            item_id = pipeline_track(instance._session).speech_started(started)
            session_track(instance._session).speech.publish(
                SpeechSignal(kind="started", item_id=item_id, at=started, origin="stt")
            )
    return wrapped(*args, **kwargs)


@when_active(FEATURE)
def _on_end_of_speech(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
    """An STT pipeline's end of speech (the STT's END_OF_SPEECH or the local VAD)."""
    with hook_errors_logged("reading an end of speech"):
        if _rt_track_of(instance) is None:
            turn = pipeline_track(instance._session).current_turn
            if turn is not None:
                ev = args[0] if args else kwargs.get("ev")
                silence = getattr(ev, "silence_duration", None)
                stopped = time.time()
                if isinstance(silence, (int, float)) and silence > 0:
                    stopped -= silence
                session_track(instance._session).speech.publish(
                    SpeechSignal(kind="stopped", item_id=turn, at=stopped, origin="stt")
                )
    return wrapped(*args, **kwargs)


def _vad_start_time(args: Any, kwargs: Any) -> float:
    explicit = kwargs.get("speech_start_time", args[1] if len(args) > 1 else None)
    if isinstance(explicit, (int, float)):
        return float(explicit)
    ev = args[0] if args else kwargs.get("ev")
    duration = getattr(ev, "speech_duration", None)
    now = time.time()
    return now - duration if isinstance(duration, (int, float)) and duration > 0 else now


@when_active(FEATURE)
def _on_end_of_turn(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
    """The turn ends: its user ChatMessage (built in a task started here) takes its id.

    Upstream returns False when it does not commit the turn (too few words to interrupt, a
    backchannel): the utterance then goes on, and so does its id.
    """
    box = None
    track: PipelineTrack | None = None
    with hook_errors_logged("closing an STT turn"):
        track = pipeline_track(instance._session)
        if track.current_turn is not None:
            box = _turn_message_id(track.current_turn)
    token = _TURN_MESSAGE_ID.set(box)
    try:
        committed = wrapped(*args, **kwargs)
    finally:
        _TURN_MESSAGE_ID.reset(token)
    if committed is not False and track is not None and box is not None:
        with hook_errors_logged("closing an STT turn"):
            track.end_turn()
    return committed


@when_active(FEATURE)
def _on_preemptive_generation(
    wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any
) -> Any:
    box = None
    with hook_errors_logged("reading a preemptive generation"):
        if (turn := pipeline_track(instance._session).current_turn) is not None:
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
    from livekit.agents import llm

    ENGINE.wrap_inline_when_needed(FEATURE, llm.ChatMessage, "__init__", _chat_message_init)
    return _OneShotId(item_id)


def _chat_message_init(original: Callable[..., Any]) -> Callable[..., Any]:
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        box = _TURN_MESSAGE_ID.get()
        if box is not None and not box.used and kwargs.get("role") == "user" and "id" not in kwargs:
            box.used = True  # set only while the feature is in effect (by its own wrappers)
            kwargs = {**kwargs, "id": box.item_id}
        original(self, *args, **kwargs)

    return __init__


def _on_push_audio(original: Callable[..., Any]) -> Callable[..., Any]:
    def push_audio(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = original(self, *args, **kwargs)
        if FEATURE in _ACTIVE:
            try:  # per audio frame pushed: try/hook_failed, not a context manager
                frame = args[0] if args else kwargs.get("frame")
                if frame is not None and (track := _rt_track_of(self)) is not None:
                    track.timeline.pushed(float(frame.duration))
            except Exception:
                hook_failed("recording pushed audio")
        return result

    return push_audio


@when_active(FEATURE)
def _on_realtime_session_init(
    wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any
) -> Any:
    """Every realtime session gets its track now (the per-event hooks read it inline)."""
    result = wrapped(*args, **kwargs)
    with hook_errors_logged("attaching to a realtime session"):
        track = realtime_track(instance)
        if type(instance).__module__.startswith(_AZURE_VOICE_LIVE):
            # an observer on this session's emit, not a listener: the emitter would inspect
            # a listener's signature at every event
            observe_before_listeners(
                instance,
                "azure_server_event_received",
                functools.partial(_on_azure_voice_live_event, track),
            )
    return result


# -- OpenAI / Azure OpenAI / xAI: the engine's speech handlers -------------------------------

_OPENAI_ENGINES = (
    ("livekit.agents.llm._realtime.openai", "RealtimeSession"),  # 1.8+: in livekit-agents
    ("livekit.plugins.openai.realtime.realtime_model", "RealtimeSession"),
    ("livekit.plugins.openai.realtime.realtime_model_beta", "RealtimeSessionBeta"),
)
"""The OpenAI-protocol engines whose speech handlers and connection are wrapped."""
_OPENAI_SUBCLASSES = (
    "livekit.plugins.xai.realtime.realtime_model",
    "livekit.agents.inference.realtime.openai",  # 1.8+: LiveKit inference, xAI models too
)
"""Modules of engine subclasses that override the speech handlers, doing their own work (xAI
finalizes the previous utterance) before calling the engine's through ``super()``."""


def _openai_family() -> list[type]:
    """The engine classes imported so far and all their subclasses, each once."""
    found: dict[type, None] = {}
    todo = [
        cls
        for module_name, class_name in _OPENAI_ENGINES
        if isinstance(cls := getattr(sys.modules.get(module_name), class_name, None), type)
    ]
    while todo:
        cls = todo.pop()
        if cls not in found:
            found[cls] = None
            todo.extend(cls.__subclasses__())
    return list(found)


_OPENAI_SPEECH: dict[str, tuple[Literal["started", "stopped"], str]] = {
    "input_audio_buffer.speech_started": ("started", "audio_start_ms"),
    "input_audio_buffer.speech_stopped": ("stopped", "audio_end_ms"),
}
"""The OpenAI protocol's speech events: what they say, and their audio offset's field."""


def _on_openai_speech(event_type: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The engine's handler of ``event_type``: the item id and audio offset, which the
    ``input_speech_started``/``_stopped`` the handler emits lack (so this runs before it)."""
    failure = f"reading an OpenAI {event_type}"

    def build(original: Callable[..., Any]) -> Callable[..., Any]:
        def handler(self: Any, *args: Any, **kwargs: Any) -> Any:
            if FEATURE in _ACTIVE:
                try:
                    event = args[0] if args else None
                    track = getattr(self, REALTIME_TRACK, None) or realtime_track(self)
                    if event is None or event is not track.speech_event:  # not in an override
                        track.speech_event = event
                        _openai_speech(track, event_type, event)
                except Exception:
                    hook_failed(failure)
            return original(self, *args, **kwargs)

        return handler

    return build


def _openai_speech(track: RealtimeTrack, event_type: str, event: Any) -> None:
    """An OpenAI-protocol speech start or stop, its fields as the server sent them."""
    kind, offset_field = _OPENAI_SPEECH[event_type]
    item_id, audio_ms = getattr(event, "item_id", None), getattr(event, offset_field, None)
    track.provider = "openai"
    track.provider_speech(
        kind,
        item_id if type(item_id) is str else None,
        arrival=time.time(),
        audio_offset=audio_ms / 1000 if isinstance(audio_ms, (int, float)) else None,
    )


@when_active(FEATURE)
async def _on_openai_connection(
    wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any
) -> Any:
    """A (re)connection: the provider counts audio offsets from zero again."""
    ws = await wrapped(*args, **kwargs)
    with hook_errors_logged("noting a realtime connection"):
        realtime_track(instance).connected()
    return ws


_AZURE_VOICE_LIVE = "livekit.plugins.azure.realtime"


def _on_azure_voice_live_event(track: RealtimeTrack, event: Any) -> None:
    """Azure Voice Live (livekit-plugins-azure) speaks the OpenAI protocol through the
    azure-ai-voicelive SDK and emits its typed events: speech start and stop carry the item
    id and audio offsets the framework's own ``input_speech_started`` lacks."""
    if FEATURE not in ENGINE.active:
        return
    kind = getattr(event, "type", None)
    kind = getattr(kind, "value", kind)  # the SDK's str enum
    if kind == "session.created":
        track.connected()
    elif isinstance(kind, str) and kind in _OPENAI_SPEECH:  # a str: unhashables never reach `in`
        _openai_speech(track, kind, event)


# -- Gemini --------------------------------------------------------------------------------


@when_active(FEATURE)
def _gemini_recv_task(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
    """Observe every LiveServerMessage of this connection for the voiceActivity the plugin ignores."""
    with hook_errors_logged("attaching to a Gemini live connection"):
        connection = args[0] if args else kwargs.get("session")
        track = realtime_track(instance)
        track.provider = "gemini"  # voiceActivity: better than the plugin's speech events
        track.connected()
        receive = connection.receive

        async def observed_receive(*a: Any, **kw: Any) -> Any:
            async for message in receive(*a, **kw):
                with hook_errors_logged("reading a Gemini server message"):
                    _on_gemini_message(track, message)
                    _on_gemini_interim(instance, track, message)
                yield message

        connection.receive = observed_receive
    return wrapped(*args, **kwargs)


def _on_gemini_message(track: RealtimeTrack, message: Any) -> None:
    if not ENGINE.is_active(FEATURE):
        return
    activity = getattr(message, "voice_activity", None)
    kind = str(getattr(activity, "voice_activity_type", "") or "")
    signal = getattr(message, "voice_activity_detection_signal", None)
    signal_kind = str(getattr(signal, "vad_signal_type", "") or "")
    if activity is not None and kind.endswith("ACTIVITY_END"):
        _gemini_speech_stopped(track, parse_duration(activity.audio_offset))
        return
    if activity is not None and kind.endswith("ACTIVITY_START"):
        offset = parse_duration(activity.audio_offset)
    elif signal is not None and signal_kind.endswith("SOS"):
        offset = None
    else:
        if track.inferred_item is not None:
            _gemini_inferred_stop(track, message)
        return
    # Gemini names the utterance only when its first transcript arrives; reserve that name now,
    # so whatever overlaps the speech from its start (a parallel STT) can already carry it
    reserved = _new_gemini_input_id()
    track.reserved_item = reserved
    track.speaking_item = reserved
    track.provider_speech("started", reserved, arrival=time.time(), audio_offset=offset)


def _gemini_speech_stopped(track: RealtimeTrack, offset: float | None) -> None:
    """ACTIVITY_END: the utterance whose start was signalled stops (once)."""
    item_id, track.speaking_item = track.speaking_item, None
    if item_id is None:
        return
    if item_id == track.inferred_item:
        track.inferred_item = None
    stopped = time.time()
    if offset is not None and (mapped := track.timeline.wall_time_at(offset)):
        stopped = min(mapped, stopped)
    track.signal("stopped", item_id, stopped)


def _gemini_inferred_stop(track: RealtimeTrack, message: Any) -> None:
    """No ``voiceActivity`` said the speech ended: the model's first output (text, audio,
    output transcription or a tool call) says the service decided the user's turn is over;
    else ``turnComplete`` does (both before the plugin sees the message, which ends the
    turn and emits the final). The final itself is the last resort (``Utterances``)."""
    content = getattr(message, "server_content", None)
    output = getattr(content, "output_transcription", None)
    if (
        getattr(message, "tool_call", None) is not None
        or getattr(content, "model_turn", None) is not None
        or getattr(output, "text", None)
    ):
        evidence = "generation"
    elif getattr(content, "turn_complete", None):
        evidence = "turn_complete"
    else:
        return
    item_id, track.inferred_item = track.inferred_item, None
    if item_id is not None:
        track.signal("stopped", item_id, time.time(), evidence)


# -- Gemini interim input transcription (opt-in) ------------------------------------------

_INTERIM_MODELS: weakref.WeakSet[Any] = weakref.WeakSet()
"""Gemini RealtimeModels whose interim input transcriptions are forwarded (owned here)."""


def gemini_interim_transcripts(model: Any) -> Any:
    """Opt in: Gemini's ``interimInputTranscription`` (low-latency text while the user speaks)
    becomes ``user_input_transcribed(is_final=False)`` for sessions of ``model``.

    livekit-plugins-google ignores these messages. Each one is forwarded with the utterance's
    ``item_id`` and ``speech_started_at`` and ``source="realtime"``, carrying the whole text so
    far; the final ``inputTranscription`` text supersedes them and the final event at turn end
    is unchanged. google-genai (checked: 3.6.1) has no ``LiveConnectConfig`` field that asks
    for interim input transcription (the service sends it where the model supports it;
    ``RealtimeInputConfig.interim_transcript_timestamp_enabled`` only adds timestamps), so the
    connect config is left as it is; this is logged once at INFO. Input transcription must be
    on (the plugin's default). Returns ``model``.
    """
    _INTERIM_MODELS.add(model)
    with hook_errors_logged("reading google-genai's LiveConnectConfig"):
        from google.genai import types

        fields = [f for f in types.LiveConnectConfig.model_fields if "interim" in f]
        logger.info(
            "livekit_ext: Gemini interim input transcriptions are forwarded; google-genai's "
            "LiveConnectConfig has %s, so nothing is set in the connect config",
            f"fields {fields} (not set by livekit_ext)" if fields else "no field to request them",
        )
    return model


def _on_gemini_interim(session: Any, track: RealtimeTrack, message: Any) -> None:
    """Before the plugin sees a message: a final transcription's ``start_offset`` names a new
    utterance with its speech start (any model); an ``interimInputTranscription`` (which the
    plugin ignores) is forwarded for an opted-in model."""
    content = getattr(message, "server_content", None)
    if content is None or not ENGINE.is_active(FEATURE):
        return
    opted = getattr(session, "_realtime_model", None) in _INTERIM_MODELS
    final = getattr(content, "input_transcription", None)
    if final is not None and getattr(final, "text", None):
        item_id = _gemini_utterance_item(session, track)
        if item_id is None and (offset := parse_duration(final.start_offset)) is not None:
            _name_gemini_utterance(track, offset)  # the generation it opens takes this name
        elif item_id is None:
            track.heard_unnamed = True  # the generation it opens names it
        elif item_id is not None and opted:
            track.interims_closed[item_id] = time.time()  # later interims here are stale
        return
    if not opted:
        return
    interim = getattr(content, "interim_input_transcription", None)
    text = getattr(interim, "text", None) if interim is not None else None
    if not text:
        return
    named = _gemini_utterance_item(session, track)
    # no voiceActivity before: the utterance is named at its first text
    item_id = named or _name_gemini_utterance(
        track, parse_duration(getattr(interim, "start_offset", None))
    )
    if item_id in track.interims_closed:
        logger.debug("livekit_ext: an interim Gemini transcript after the final text ignored")
        return
    before = track.interims.get(item_id, "")
    merged = merge_interim(before, text)
    if merged == before:
        return
    track.interims[item_id] = merged
    from livekit.agents import llm

    session.emit(
        "input_audio_transcription_completed",
        llm.InputTranscriptionCompleted(item_id=item_id, transcript=merged, is_final=False),
    )


def _name_gemini_utterance(track: RealtimeTrack, offset: float | None) -> str:
    """Reserve the id of an utterance first heard of in a transcription (no voiceActivity),
    starting at ``offset`` into the audio where known, else now."""
    item_id = _new_gemini_input_id()
    # no signal: the transcript that named it starts the utterance for subscribers itself
    track.provider_speech(
        "started", item_id, arrival=time.time(), audio_offset=offset, publish=False
    )
    track.reserved_item = item_id
    if track.speaking_item is None:  # no voiceActivity: its stop is inferred
        track.inferred_item = item_id
    return item_id


def _gemini_utterance_item(session: Any, track: RealtimeTrack) -> str | None:
    """The utterance the user is speaking: the id reserved at its speech start (not taken by
    a generation yet), else the open generation's input id, else None (not named yet)."""
    if track.reserved_item is not None:
        return track.reserved_item
    generation = getattr(session, "_current_generation", None)
    if generation is not None and not getattr(generation, "_done", True):
        item_id = getattr(generation, "input_id", None)
        return item_id if isinstance(item_id, str) else None
    return None


def merge_interim(before: str, text: str) -> str:
    """The whole text so far, from an interim that is either the whole text or a delta.

    A text that extends what came before is the whole text; one that starts with a space
    (Gemini's transcription chunks do) is a delta appended to it; anything else is a revised
    whole text.
    """
    if not before:
        return text.strip()
    if text.strip().startswith(before):
        return text.strip()
    if text[:1].isspace():
        return (before + text).rstrip()
    return text.strip()


@when_active(FEATURE)
def _gemini_new_generation(
    wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any
) -> Any:
    result = wrapped(*args, **kwargs)
    with hook_errors_logged("binding a Gemini generation to its speech start"):
        generation = getattr(instance, "_current_generation", None)
        track = realtime_track(instance)
        reserved = track.take_reserved_item()
        if generation is not None and reserved is not None:
            generation.input_id = reserved  # nothing has used the plugin's own id yet
        elif (item_id := getattr(generation, "input_id", None)) is not None:
            track.bind_pending(item_id)
        if track.heard_unnamed:  # opened by the user's transcript: the utterance is spoken
            track.heard_unnamed = False
            item_id = getattr(generation, "input_id", None)
            if track.speaking_item is None and isinstance(item_id, str):
                track.inferred_item = item_id  # no voiceActivity: its stop is inferred
    return result


def _new_gemini_input_id() -> str:
    from livekit.agents import utils

    return str(utils.shortuuid("GI_"))


# -- the feature ---------------------------------------------------------------------------


def event_class() -> Any:
    from livekit.agents.voice.events import UserInputTranscribedEvent

    return UserInputTranscribedEvent


def _missing_fields() -> list[str]:
    return [name for name in _FIELD_NAMES if name not in event_class().__pydantic_fields__]


class TranscriptIdentity(Feature):
    name = FEATURE
    description = "item_id, speech_started_at and source on every user_input_transcribed event"
    parts = {
        "livekit.plugins.google": "install_gemini",
        **{module: "install_openai" for module, _ in _OPENAI_ENGINES},
        **{module: "install_openai" for module in _OPENAI_SUBCLASSES},
    }

    def probe(self) -> Probe:
        missing = _missing_fields()
        if not missing:
            return Probe("native", "UserInputTranscribedEvent already carries the identity fields")
        return Probe("patchable", f"adds {', '.join(missing)} to UserInputTranscribedEvent")

    def install(self, patcher: Patcher) -> None:
        from livekit.agents import llm
        from livekit.agents.voice.agent_activity import AgentActivity
        from livekit.agents.voice.agent_session import AgentSession

        self._add_fields(patcher)
        patcher.wrap_inline(AgentSession, "_user_input_transcribed", _funnel)
        patcher.on_undo(FUNNEL._observers_to_emit)
        patcher.wrap(AgentSession, "start", _on_session_start)
        patcher.wrap_inline(
            AgentActivity, "_on_input_audio_transcription_completed", _on_realtime_transcription
        )
        patcher.wrap_inline(AgentActivity, "_on_input_speech_stopped", _on_realtime_speech_stopped)
        patcher.wrap_inline(AgentActivity, "_on_input_speech_started", _on_realtime_speech_started)
        patcher.wrap(AgentActivity, "start", _on_activity_start)
        patcher.wrap(AgentActivity, "on_end_of_speech", _on_end_of_speech)
        patcher.wrap(AgentActivity, "on_interim_transcript", _on_stt_transcript)
        patcher.wrap(AgentActivity, "on_final_transcript", _on_stt_transcript)
        patcher.wrap(AgentActivity, "on_start_of_speech", _on_vad_start_of_speech)
        patcher.wrap(AgentActivity, "on_end_of_turn", _on_end_of_turn)
        patcher.wrap(AgentActivity, "on_preemptive_generation", _on_preemptive_generation)
        patcher.wrap_inline(AgentActivity, "push_audio", _on_push_audio)
        patcher.wrap(llm.RealtimeSession, "__init__", _on_realtime_session_init)

    def install_openai(self, patcher: Patcher) -> None:
        """An OpenAI-protocol engine (or a subclass's) module was imported: wrap the speech
        handlers wherever the family defines them, so that the speech is signalled before an
        override's own work (the first wrapper reached handles the event), and each engine's
        connection. Each once: in 1.8 the plugin's module re-exports the engine's class."""
        handlers = [  # upstream names each handler after its event
            ("_handle_" + event_type.replace(".", "_"), _on_openai_speech(event_type))
            for event_type in _OPENAI_SPEECH
        ]
        engines = {getattr(sys.modules.get(m), c, None) for m, c in _OPENAI_ENGINES}
        for cls in _openai_family():
            for name, build in handlers:
                if name in vars(cls) and not patcher.has_wrapped(cls, name):
                    patcher.wrap_inline(cls, name, build)
            if (
                cls in engines
                and "_create_ws_conn" in vars(cls)
                and not patcher.has_wrapped(cls, "_create_ws_conn")
            ):
                patcher.wrap(cls, "_create_ws_conn", _on_openai_connection)

    def _add_fields(self, patcher: Patcher) -> None:
        cls = event_class()
        original = cls.__pydantic_fields__
        fields = dict(original)
        new_fields = _new_fields()
        _added_fields[:] = _missing_fields()
        for name in _added_fields:
            fields[name] = new_fields[name]

        def rebuild(with_fields: dict[str, Any]) -> None:
            cls.__pydantic_fields__ = with_fields
            cls.model_rebuild(force=True)
            # pydantic >= 2.11 memoizes a setattr handler per attribute name on the class;
            # one memoized while our fields existed would keep accepting them after revert
            handlers = vars(cls).get("__pydantic_setattr_handlers__")
            if isinstance(handlers, dict):
                handlers.clear()

        patcher.on_undo(lambda: rebuild(original))
        patcher.on_undo(_added_fields.clear)
        rebuild(fields)

    def install_gemini(self, patcher: Patcher) -> None:
        """The Gemini plugin was imported: observe voiceActivity, name utterances at its start."""
        from livekit.plugins.google.realtime.realtime_api import RealtimeSession

        patcher.wrap(RealtimeSession, "_recv_task", _gemini_recv_task)
        patcher.wrap(RealtimeSession, "_start_new_generation", _gemini_new_generation)
