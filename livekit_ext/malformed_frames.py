"""Malformed realtime frames: a log line, not the end of the user's session.

OpenAI/Azure/xAI (and 1.8's GPT-Live engine): upstream's receive loop parses every text frame
with ``json.loads`` outside its per-event error handling, and its error handler itself reads
``event["type"]`` (and an audio delta's ``delta``), so a frame that is not a JSON object, has
no string ``type``, or is an audio delta without a string ``delta`` ends the connection task
and the AgentSession with it. Here the websocket the plugin opens hands upstream only frames
that pass those checks; the frame is parsed once, where the websocket is read, and the
engine module's ``json.loads`` takes that very parse instead of parsing again (the module's
``json`` is a stand-in that is the real ``json`` in every other respect). Gemini's frames are
``gemini_malformed_frames``.

Native where the patch series (``malformed_frames`` in ``patches/<base>/series``) is applied:
every engine module then parses frames with ``parse_server_event``, which raises
``ValueError`` for each of those frames, and the receive loops log and skip them.
"""

from __future__ import annotations

import json
import logging
import sys
import types
from collections.abc import Callable
from typing import Any

from ._registry import ENGINE, Feature, Patcher, Probe, hook_errors_logged, when_active

logger = logging.getLogger("livekit_ext")

FEATURE = "malformed_frames"

_AUDIO_DELTAS = frozenset(
    {"response.output_audio.delta", "response.audio.delta", "session.output_audio.delta"}
)
"""Events upstream's error handler slices ``delta`` of (Azure's beta name included)."""


def frame_problem(event: Any) -> str | None:
    """Why upstream's receive loop would fail on ``event`` outside its error handling, or None."""
    if type(event) is not dict:
        return f"not a JSON object: {type(event).__name__}"
    kind = event.get("type")
    if type(kind) is not str or not kind:
        return "no 'type'" if not kind else f"no string 'type' ({kind!r:.40})"
    if kind in _AUDIO_DELTAS and type(event.get("delta")) is not str:
        return f"a {kind} without a string 'delta'"
    return None


class _Handoff:
    """The frame the websocket just returned and its parse, for the module's ``json.loads``.

    The receive loop calls ``json.loads(msg.data)`` right after ``receive()`` returns, with no
    await in between, so one slot per process is enough. The slot holds one ``(frame, event)``
    pair, stored and read as a whole (sessions in other threads may overwrite it), and
    ``loads`` takes the event only for that very frame object; anything else it parses.
    """

    __slots__ = ("pair",)

    def __init__(self) -> None:
        self.pair: tuple[Any, Any] | None = None


_HANDOFF = _Handoff()


def _loads(s: Any, **kwargs: Any) -> Any:
    # json.loads takes only keywords after ``s``; the receive loops pass none
    pair = _HANDOFF.pair
    if pair is not None and pair[0] is s and not kwargs:
        _HANDOFF.pair = None
        return pair[1]
    return json.loads(s, **kwargs)


def _json_stand_in() -> types.ModuleType:
    """``json`` for an engine module: the real one, except ``loads`` takes the handoff."""
    stand_in = types.ModuleType("json", json.__doc__)
    vars(stand_in).update({k: v for k, v in vars(json).items() if not k.startswith("__")})
    stand_in.loads = _loads  # type: ignore[attr-defined]
    stand_in.__livekit_ext_json__ = True  # type: ignore[attr-defined]
    return stand_in


def _guard_frames(ws: Any) -> None:
    """Make ``ws.receive()`` parse each text frame once and skip the ones upstream cannot take."""
    from aiohttp import WSMsgType

    text, binary = WSMsgType.TEXT, WSMsgType.BINARY
    receive = ws.receive
    active = ENGINE._patchers
    handoff = _HANDOFF
    loads = json.loads
    audio_deltas = _AUDIO_DELTAS

    async def receive_valid(*args: Any, **kwargs: Any) -> Any:
        while True:
            msg = await receive(*args, **kwargs)
            if msg.type is not text or FEATURE not in active:
                if msg.type is binary and FEATURE in active:
                    # upstream skips it without a word; say what was skipped
                    logger.warning(
                        "livekit_ext: ignored a binary realtime server frame: %.120r", msg.data
                    )
                return msg
            data = msg.data
            try:
                event = loads(data)
            except ValueError as e:
                problem: str | None = f"not JSON: {e}"
            else:
                # frame_problem's answer for a good frame, inline: this runs on every frame
                if (
                    type(event) is dict
                    and type(kind := event.get("type")) is str
                    and kind
                    and (kind not in audio_deltas or type(event.get("delta")) is str)
                ):
                    handoff.pair = (data, event)
                    return msg
                problem = frame_problem(event)
            logger.warning(
                "livekit_ext: dropped a realtime server frame (%s): %.120r", problem, data
            )

    ws.receive = receive_valid


@when_active(FEATURE)
async def _create_ws_conn(
    wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any
) -> Any:
    ws = await wrapped(*args, **kwargs)
    with hook_errors_logged("guarding the realtime websocket"):
        _guard_frames(ws)
    return ws


# -- installing, one upstream module at a time ---------------------------------------------


def _attrs(cls: type) -> set[str]:
    return {name for klass in cls.__mro__ for name in vars(klass)}


def _openai_session_classes() -> list[type]:
    """The OpenAI-protocol sessions that open their own websocket, one per engine module."""
    classes: list[type] = []
    for module_name, class_name in (
        ("livekit.plugins.openai.realtime.realtime_model", "RealtimeSession"),
        ("livekit.plugins.openai.realtime.realtime_model_beta", "RealtimeSessionBeta"),
        # 1.8: the engines live in livekit-agents; the plugin re-exports the same classes
        ("livekit.agents.llm._realtime.gpt_live", "GPTLiveSession"),
    ):
        try:
            module = __import__(module_name, fromlist=[class_name])
            classes.append(getattr(module, class_name))
        except (ImportError, AttributeError):
            continue
    return [c for c in dict.fromkeys(classes) if "_create_ws_conn" in _attrs(c)]


def install_openai_engine(patcher: Patcher, session_class: type) -> None:
    """Guard the websocket ``session_class`` opens; its module's ``json.loads`` takes the parse."""
    module = sys.modules[session_class.__module__]
    if not isinstance(vars(module).get("json"), types.ModuleType):
        raise RuntimeError(f"{module.__name__} does not parse frames with a module-level json")
    patcher.wrap(session_class, "_create_ws_conn", _create_ws_conn)
    if not getattr(module.json, "__livekit_ext_json__", False):
        patcher.replace(module, "json", _json_stand_in())


_REJECTED_FRAMES = (
    "{not json",
    "[1, 2]",
    "{}",
    '{"type": 7}',
    '{"type": "response.output_audio.delta"}',
)


def _rejects(parse: Callable[[str], Any], frame: str) -> bool:
    try:
        parse(frame)
    except ValueError:
        return True
    except Exception:
        return False
    return False


def _parses_frames_natively(cls: type) -> bool:
    """Whether ``cls``'s module parses frames with the patch series' ``parse_server_event``,
    and it rejects every frame this feature drops."""
    parse = getattr(sys.modules.get(cls.__module__), "parse_server_event", None)
    if not callable(parse):
        return False
    try:
        if parse('{"type": "probe"}') != {"type": "probe"}:
            return False
    except Exception:
        return False
    return all(_rejects(parse, frame) for frame in _REJECTED_FRAMES)


class MalformedFrames(Feature):
    name = FEATURE
    description = "a malformed realtime server frame is logged and dropped, not fatal"
    trigger = "livekit.plugins.openai"
    distribution = "livekit-plugins-openai"

    def probe(self) -> Probe:
        classes = _openai_session_classes()
        if not classes:
            return Probe("unsupported", "no OpenAI realtime session with _create_ws_conn found")
        if all(_parses_frames_natively(cls) for cls in classes):
            return Probe("native", "the realtime sessions log and skip frames they cannot dispatch")
        return Probe(
            "patchable",
            "drops realtime server frames upstream cannot take, where the sessions read them",
        )

    def install(self, patcher: Patcher) -> None:
        for cls in _openai_session_classes():
            install_openai_engine(patcher, cls)
