"""OpenAI / Azure OpenAI / xAI (and Azure Voice Live): the speech events name the item.

The engine's ``input_audio_buffer.speech_started``/``_stopped`` handlers see the item id and
the audio offset, which the framework's own ``input_speech_started``/``_stopped`` lack; they
are wrapped wherever the engine family defines them, so that the speech is signalled before
an override's own work (xAI finalizes the previous utterance first). A (re)connection makes
the provider count audio offsets from zero again.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal

from .. import _touchpoints as tp
from .._funnel import IDENTITY
from .._wrapping import ACTIVE, Patcher, hook_errors_logged, hook_failed, when_active
from .realtime_speech import REALTIME, RealtimeSpeech

SPEECH_EVENTS: Mapping[str, tuple[Literal["started", "stopped"], str]] = {
    "input_audio_buffer.speech_started": ("started", "audio_start_ms"),
    "input_audio_buffer.speech_stopped": ("stopped", "audio_end_ms"),
}
"""The OpenAI protocol's speech events: what they say, and their audio offset's field."""
_HANDLERS = tuple("_handle_" + event.replace(".", "_") for event in SPEECH_EVENTS)
"""Upstream names each handler after its event."""

ENGINE_HANDLERS = tuple(
    tp.wrap(
        f"OpenAI/Azure/xAI speech {kind}: the item id and audio offset",
        *tp.engine(f"RealtimeSession.{name}"),
    )
    for name, (kind, _) in zip(_HANDLERS, SPEECH_EVENTS.values(), strict=True)
)
SUBCLASS_HANDLERS = tuple(
    tp.wrap(
        "an engine subclass's own speech handlers (xAI finalizes the previous utterance before "
        "calling the engine's): the speech is signalled before that",
        f"{module}:RealtimeSession.{name}",
        optional=True,
    )
    for module in tp.OPENAI_SUBCLASSES
    for name in _HANDLERS
)
BETA_HANDLERS = tuple(
    tp.wrap(
        "the beta engine (to 1.4): the same speech handlers",
        f"{tp.OPENAI_BETA}:RealtimeSessionBeta.{name}",
        optional=True,
    )
    for name in _HANDLERS
)
CONNECTION = tp.wrap(
    "an OpenAI-protocol (re)connection: audio offsets count from zero again",
    *tp.engine("RealtimeSession._create_ws_conn"),
    f"{tp.OPENAI_BETA}:RealtimeSessionBeta._create_ws_conn",
)
VOICE_LIVE_EVENTS = tp.read(
    "Azure Voice Live (1.8+): its SDK events, emitted as azure_server_event_received, carry "
    "the speech start's item id and audio offset",
    "livekit.plugins.azure.realtime.realtime_model:RealtimeSession._handle_server_event",
    optional=True,
)
VOICE_LIVE_MODULE = "livekit.plugins.azure.realtime"
ENGINE_CLASSES = (
    *((module, "RealtimeSession") for module in tp.OPENAI_ENGINES),
    (tp.OPENAI_BETA, "RealtimeSessionBeta"),
)
PARTS = (*tp.OPENAI_ENGINES, tp.OPENAI_BETA, *tp.OPENAI_SUBCLASSES)
"""The modules whose import installs this part (each engine, each subclass)."""


_SPEECH = REALTIME.attr  # read inline: this runs per speech event


def install(patcher: Patcher) -> None:
    """Wrap the speech handlers wherever the family defines them, and each engine's
    connection. Each once: in 1.8 the plugin's module re-exports the engine's class."""
    engines = {getattr(sys.modules.get(m), c, None) for m, c in ENGINE_CLASSES}
    for cls in _family():
        for event_type, name in zip(SPEECH_EVENTS, _HANDLERS, strict=True):
            if name in vars(cls) and not patcher.has_wrapped(cls, name):
                patcher.wrap_inline(_declared(cls, name), _speech_handler(event_type), on=cls)
        connects = cls in engines and CONNECTION.name in vars(cls)
        if connects and not patcher.has_wrapped(cls, CONNECTION.name):
            patcher.wrap(CONNECTION, _create_ws_conn, on=cls)


def _declared(cls: type, name: str) -> tp.Touchpoint:
    """The declaration of ``cls.name``: its own (beta, a known subclass), else the engine's
    (a subclass of the user's)."""
    path = f"{cls.__module__}:{cls.__qualname__}.{name}"
    for where in (*BETA_HANDLERS, *SUBCLASS_HANDLERS, *ENGINE_HANDLERS):
        if path in where.paths:
            return where
    return next(where for where in ENGINE_HANDLERS if where.name == name)


def _family() -> list[type]:
    """The engine classes imported so far and all their subclasses, each once."""
    found: dict[type, None] = {}
    todo = [
        cls
        for module_name, class_name in ENGINE_CLASSES
        if isinstance(cls := getattr(sys.modules.get(module_name), class_name, None), type)
    ]
    while todo:
        cls = todo.pop()
        if cls not in found:
            found[cls] = None
            todo.extend(cls.__subclasses__())
    return list(found)


def _speech_handler(event_type: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The engine's handler of ``event_type``: the item id and audio offset, which the
    ``input_speech_started``/``_stopped`` the handler emits lack (so this runs before it)."""
    failure = f"reading an OpenAI {event_type}"

    def build(original: Callable[..., Any]) -> Callable[..., Any]:
        def handler(self: Any, *args: Any, **kwargs: Any) -> Any:
            if IDENTITY in ACTIVE:
                try:
                    event = args[0] if args else None
                    speech = getattr(self, _SPEECH, None) or REALTIME.of(self)
                    if event is None or event is not speech.speech_event:  # not in an override
                        speech.speech_event = event
                        speech_event(speech, event_type, event)
                except Exception:
                    hook_failed(failure)
            return original(self, *args, **kwargs)

        return handler

    return build


def speech_event(speech: RealtimeSpeech, event_type: str, event: Any) -> None:
    """An OpenAI-protocol speech start or stop, its fields as the server sent them."""
    kind, offset_field = SPEECH_EVENTS[event_type]
    item_id, audio_ms = getattr(event, "item_id", None), getattr(event, offset_field, None)
    speech.provider = "openai"
    speech.provider_speech(
        kind,
        item_id if type(item_id) is str else None,
        arrival=time.time(),
        audio_offset=audio_ms / 1000 if isinstance(audio_ms, (int, float)) else None,
    )


@when_active(IDENTITY)
async def _create_ws_conn(
    wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any
) -> Any:
    """A (re)connection: the provider counts audio offsets from zero again."""
    ws = await wrapped(*args, **kwargs)
    with hook_errors_logged("noting a realtime connection"):
        REALTIME.of(instance).connected()
    return ws


def on_voice_live_event(speech: RealtimeSpeech, event: Any) -> None:
    """Azure Voice Live (livekit-plugins-azure) speaks the OpenAI protocol through the
    azure-ai-voicelive SDK and emits its typed events: speech start and stop carry the item
    id and audio offsets the framework's own ``input_speech_started`` lacks."""
    if IDENTITY not in ACTIVE:
        return
    kind = getattr(event, "type", None)
    kind = getattr(kind, "value", kind)  # the SDK's str enum
    if kind == "session.created":
        speech.connected()
    elif isinstance(kind, str) and kind in SPEECH_EVENTS:  # a str: unhashables never reach `in`
        speech_event(speech, kind, event)
