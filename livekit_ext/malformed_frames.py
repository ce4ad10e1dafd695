"""Malformed realtime frames: a log line, not the end of the user's session.

Upstream's OpenAI receive loop parses every text frame with ``json.loads`` outside its
per-event error handling, so one frame that is not a JSON object ends the connection task
and closes the AgentSession. This feature filters such frames out where the plugin reads
them (the websocket it opens), logs what was dropped, and leaves every valid frame alone.

Native where the patch series (``malformed_frames`` in ``patches/<base>/series``) is applied:
the session's module then parses each frame with ``_parse_server_event``, which returns
``None`` for anything that is not a JSON object, and the receive loop logs and skips it.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from typing import Any

from ._registry import Feature, Patcher, Probe, hook_errors_logged, when_active

logger = logging.getLogger("livekit_ext")

FEATURE = "malformed_frames"


def _is_json_object(data: Any) -> bool:
    try:
        return isinstance(json.loads(data), dict)
    except (TypeError, ValueError):
        return False


def _filter_frames(ws: Any) -> None:
    """Make ``ws.receive()`` skip text frames that are not a JSON object (logged)."""
    import aiohttp

    receive = ws.receive

    async def receive_valid(*args: Any, **kwargs: Any) -> Any:
        while True:
            msg = await receive(*args, **kwargs)
            if msg.type != aiohttp.WSMsgType.TEXT or _is_json_object(msg.data):
                return msg
            logger.warning(
                "livekit_ext: dropped a realtime server frame that is not a JSON object: %.120r",
                msg.data,
            )

    ws.receive = receive_valid


@when_active(FEATURE)
async def _create_ws_conn(
    wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any
) -> Any:
    ws = await wrapped(*args, **kwargs)
    with hook_errors_logged("guarding the realtime websocket"):
        _filter_frames(ws)
    return ws


def _session_classes() -> list[type]:
    classes: list[type] = []
    try:
        from livekit.plugins.openai.realtime import realtime_model

        classes.append(realtime_model.RealtimeSession)
    except (ImportError, AttributeError):
        pass
    try:
        from livekit.plugins.openai.realtime import realtime_model_beta  # type: ignore[attr-defined]

        classes.append(realtime_model_beta.RealtimeSessionBeta)
    except (ImportError, AttributeError):
        pass
    # 1.8 moved the engine into livekit-agents; the plugin re-exports the same class
    return [c for c in dict.fromkeys(classes) if "_create_ws_conn" in _attrs(c)]


def _attrs(cls: type) -> set[str]:
    return {name for klass in cls.__mro__ for name in vars(klass)}


def _parses_frames_natively(cls: type) -> bool:
    """Whether ``cls``'s module has the patch's frame parser, and it rejects bad frames."""
    parse = getattr(sys.modules.get(cls.__module__), "_parse_server_event", None)
    if not callable(parse):
        return False
    try:
        return (
            parse("{not json") is None
            and parse("[1, 2]") is None
            and parse('{"type": "probe"}') == {"type": "probe"}
        )
    except Exception:
        return False


class MalformedFrames(Feature):
    name = FEATURE
    description = "a malformed OpenAI realtime frame is logged and dropped, not fatal"
    trigger = "livekit.plugins.openai"
    distribution = "livekit-plugins-openai"

    def probe(self) -> Probe:
        classes = _session_classes()
        if not classes:
            return Probe("unsupported", "no OpenAI realtime session with _create_ws_conn found")
        if all(_parses_frames_natively(cls) for cls in classes):
            return Probe("native", "the OpenAI realtime session skips frames that are not JSON")
        return Probe("patchable", "filters non-JSON frames where the OpenAI session reads them")

    def install(self, patcher: Patcher) -> None:
        for cls in _session_classes():
            patcher.wrap(cls, "_create_ws_conn", _create_ws_conn)
