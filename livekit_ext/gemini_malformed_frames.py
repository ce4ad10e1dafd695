"""Malformed Gemini Live frames: a log line, not a reconnect that may end the session.

google-genai parses and validates each frame in ``AsyncSession._receive``; a frame it cannot
parse or validate raises there, and the plugin tears the connection down and reconnects
(a run of them uses up the retry budget and ends the session). Here an error raised while a
frame that did arrive is parsed drops that frame (logged) and the next one is read; a closed
connection still raises as before. A frame that is not a JSON object, which google-genai reads
as an empty message, is logged too.

The patch series gives the plugin the same guard (``realtime_api._drop_malformed_frames``,
applied by the receive task to its connection); where the plugin has it, this is ``native``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from . import _touchpoints as tp
from ._engine import Feature, Probe
from ._wrapping import ACTIVE, Patcher, hook_errors_logged, when_active

logger = logging.getLogger("livekit_ext")

FEATURE = "gemini_malformed_frames"

GEMINI_RECV_TASK = tp.wrap(
    "each Gemini connection: drop a frame google-genai cannot take",
    f"{tp.GEMINI}:RealtimeSession._recv_task",
)
NATIVE_GUARD = tp.read(
    "the patch series' guard in the plugin: native when present",
    f"{tp.GEMINI}:_drop_malformed_frames",
    optional=True,
)
GENAI_RECEIVE = tp.replace(
    "per connection: the frame google-genai failed on is dropped (google-genai, not in the "
    "sweep's wheels)",
    "google.genai.live:AsyncSession._receive",
    optional=True,
)


def _guard_gemini_connection(connection: Any) -> None:
    """Make ``connection._receive()`` drop a frame google-genai fails to parse or validate.

    The frame is marked when the websocket returns it; an exception from ``_receive`` after
    that came from parsing it (``ValueError``, pydantic's ``ValidationError``, the ``APIError``
    genai raises for an object it maps to nothing), not from the connection, which raises
    from ``recv`` itself, before any frame is marked.
    """
    ws = connection._ws
    recv = ws.recv
    receive = connection._receive
    arrived: list[Any] = []

    async def recv_marked(*args: Any, **kwargs: Any) -> Any:
        frame = await recv(*args, **kwargs)
        arrived.append(frame)
        return frame

    async def receive_valid() -> Any:
        while True:
            arrived.clear()
            try:
                message = await receive()
            except Exception as e:
                if not arrived or FEATURE not in ACTIVE:
                    raise
                logger.warning(
                    "livekit_ext: dropped a Gemini server frame google-genai rejected (%s): %.120r",
                    f"{type(e).__name__}: {e}".splitlines()[0][:160],
                    arrived[-1],
                )
                continue
            if arrived and _not_an_object(arrived[-1]):
                # google-genai reads such a frame as an empty message, which the plugin skips
                logger.warning(
                    "livekit_ext: ignored a Gemini server frame that is not a JSON object: %.120r",
                    arrived[-1],
                )
            return message

    ws.recv = recv_marked
    connection._receive = receive_valid


def _not_an_object(frame: Any) -> bool:
    """Whether a non-empty frame cannot hold a JSON object (its first character is no ``{``)."""
    if not frame or frame[:1] in (b"{", "{"):
        return False
    head = frame.lstrip()[:1]
    return bool(head) and head not in (b"{", "{")


@when_active(FEATURE)
def _gemini_recv_task(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
    with hook_errors_logged("guarding a Gemini live connection"):
        _guard_gemini_connection(args[0] if args else kwargs["session"])
    return wrapped(*args, **kwargs)


class GeminiMalformedFrames(Feature):
    name = FEATURE
    description = "a Gemini Live server frame google-genai rejects is logged and dropped"
    trigger = "livekit.plugins.google"
    distribution = "livekit-plugins-google"
    touchpoints = tp.declared(globals())

    def probe(self) -> Probe:
        if callable(tp.resolve(NATIVE_GUARD.paths[0])):
            return Probe("native", "the plugin's receive task drops a frame google-genai rejects")
        # the session's _recv_task is a checked touchpoint
        return Probe("patchable", "drops a frame google-genai cannot parse, keeps the connection")

    def install(self, patcher: Patcher) -> None:
        patcher.wrap(GEMINI_RECV_TASK, _gemini_recv_task)
