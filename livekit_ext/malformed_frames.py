"""Malformed realtime frames: a log line, not the end of the user's session.

Upstream's OpenAI receive loop parses every text frame with ``json.loads`` outside its
per-event error handling, so one frame that is not a JSON object ends the connection task
and closes the AgentSession. This feature filters such frames out where the plugin reads
them (the websocket it opens), logs what was dropped, and leaves every valid frame alone.
"""

from __future__ import annotations

import json
import logging
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


class MalformedFrames(Feature):
    name = FEATURE
    description = "a malformed OpenAI realtime frame is logged and dropped, not fatal"

    def probe(self) -> Probe:
        if not _session_classes():
            return Probe("unsupported", "no OpenAI realtime session with _create_ws_conn found")
        return Probe("patchable", "filters non-JSON frames where the OpenAI session reads them")

    def install(self, patcher: Patcher) -> None:
        for cls in _session_classes():
            patcher.wrap(cls, "_create_ws_conn", _create_ws_conn)
