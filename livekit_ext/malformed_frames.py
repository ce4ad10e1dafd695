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

from . import _touchpoints as tp
from ._engine import Feature, Probe
from ._wrapping import (
    ACTIVE,
    ParseHandoff,
    Patcher,
    Wrapper,
    hook_errors_logged,
    json_taking_handoffs,
    when_active,
)

logger = logging.getLogger("livekit_ext")

FEATURE = "malformed_frames"

CREATE_WS_CONN = tp.wrap(
    "the websocket whose text frames are parsed", *tp.engine("RealtimeSession._create_ws_conn")
)
OTHER_CREATE_WS_CONN = tp.wrap(
    "the beta engine (to 1.4) and 1.8's GPT-Live engine: their websockets' frames",
    f"{tp.OPENAI_BETA}:RealtimeSessionBeta._create_ws_conn",
    "livekit.agents.llm._realtime.gpt_live:GPTLiveSession._create_ws_conn",
    optional=True,
)
ENGINE_JSON = tp.replace(
    "the engine parses frames with its module's json: ours reuses the one parse",
    *(f"{module}:json" for module in tp.OPENAI_ENGINES),
)
PARSE_SERVER_EVENT = tp.read(
    "the patch series' frame parser: native when it rejects bad frames",
    *(f"{module}:parse_server_event" for module in tp.OPENAI_ENGINES),
    optional=True,
)

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


def _guard_frames(ws: Any, handoff: ParseHandoff) -> None:
    """Make ``ws.receive()`` parse each text frame once and skip the ones upstream cannot take."""
    from aiohttp import WSMsgType

    text, binary = WSMsgType.TEXT, WSMsgType.BINARY
    receive = ws.receive

    async def receive_valid(*args: Any, **kwargs: Any) -> Any:
        while True:
            msg = await receive(*args, **kwargs)
            if msg.type is not text or FEATURE not in ACTIVE:
                if msg.type is binary and FEATURE in ACTIVE:
                    # upstream skips it without a word; say what was skipped
                    logger.warning(
                        "livekit_ext: ignored a binary realtime server frame: %.120r", msg.data
                    )
                return msg
            data = msg.data
            try:
                event = json.loads(data)
            except ValueError as e:
                problem = f"not JSON: {e}"
            else:
                found = frame_problem(event)
                if found is None:
                    handoff.pair = (data, event)
                    return msg
                problem = found
            logger.warning(
                "livekit_ext: dropped a realtime server frame (%s): %.120r", problem, data
            )

    ws.receive = receive_valid


def _guarding(handoff: ParseHandoff) -> Wrapper:
    """The ``_create_ws_conn`` wrapper of the sessions of one engine module."""

    @when_active(FEATURE)
    async def _create_ws_conn(
        wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any
    ) -> Any:
        ws = await wrapped(*args, **kwargs)
        with hook_errors_logged("guarding the realtime websocket"):
            _guard_frames(ws, handoff)
        return ws

    return _create_ws_conn


# -- installing, one upstream module at a time ---------------------------------------------


def _openai_session_classes() -> list[type]:
    """The OpenAI-protocol sessions that open their own websocket, one per engine module (in
    1.8 the plugin re-exports the engine's classes: each once)."""
    classes = [*CREATE_WS_CONN.owners(importing=True), *OTHER_CREATE_WS_CONN.owners(importing=True)]
    return list(dict.fromkeys(classes))


def install_openai_engine(patcher: Patcher, session_class: type) -> None:
    """Guard the websocket ``session_class`` opens; its module's ``json.loads`` takes the parse."""
    module = sys.modules[session_class.__module__]
    if not isinstance(vars(module).get("json"), types.ModuleType):
        raise RuntimeError(f"{module.__name__} does not parse frames with a module-level json")
    if not isinstance(getattr(module.json, "handoff", None), ParseHandoff):
        patcher.replace(ENGINE_JSON, json_taking_handoffs(), on=module)
    patcher.wrap(CREATE_WS_CONN, _guarding(module.json.handoff), on=session_class)


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
    touchpoints = tp.declared(globals())

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
