"""Gemini: server-side disconnects of working connections never end the session.

Upstream counts a retry for every connection that ends with an error and resets the count only
when a server message arrives, so ``conn_options.max_retry + 1`` disconnects in a row without
a message between them (the server closing right after the setup handshake, say during an
outage) end the session with "Failed to connect to Gemini Live after N attempts", although
every one of those connections was made.

Decision: while the session is wanted, it keeps reconnecting, with backoff. A connection that
completes its setup handshake keeps the retry count just below the budget instead of letting
it reach it: the wait before the next attempt stays upstream's backoff (``retry_interval``
once past the first, immediate retry), and only attempts that fail to connect at all can use
up the budget and end the session, with upstream's error. A server message still resets the
count (upstream). ``max_retry=0`` still means no reconnect at all.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any

from ._registry import Feature, Patcher, Probe, hook_errors_logged, when_active

logger = logging.getLogger("livekit_ext")

FEATURE = "gemini_reconnects"


@when_active(FEATURE)
def _recv_task(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
    """A connection was made (``_recv_task`` runs once its setup completed): it is no failure."""
    with hook_errors_logged("keeping a Gemini session's reconnect budget"):
        retries = instance._num_retries
        budget = instance._opts.conn_options.max_retry
        if isinstance(retries, int) and budget > 0 and retries >= budget:
            instance._num_retries = budget - 1
            logger.info(
                "livekit_ext: Gemini connection %d in a row ended by the server without a "
                "message; reconnecting with backoff, not ending the session",
                retries,
            )
    return wrapped(*args, **kwargs)


def _session_class() -> type | None:
    try:
        from livekit.plugins.google.realtime.realtime_api import RealtimeSession
    except ImportError:
        return None
    return RealtimeSession


def _receive_errors_use_the_budget(cls: type) -> bool:
    """Whether the receive task hands its error to the retry loop (``_session_error``, 1.6+);
    before that a failed receive restarts the connection without counting a retry."""
    recv = inspect.unwrap(inspect.getattr_static(cls, "_recv_task"))
    return "_session_error" in getattr(getattr(recv, "__code__", None), "co_names", ())


def install_gemini(patcher: Patcher) -> None:
    """Wrap the google plugin's per-connection receive task."""
    cls = _session_class()
    if cls is None:
        raise RuntimeError("livekit-plugins-google is not installed")
    patcher.wrap(cls, "_recv_task", _recv_task)


class GeminiReconnects(Feature):
    name = FEATURE
    description = "server-side Gemini disconnects of working connections never end the session"
    trigger = "livekit.plugins.google"
    distribution = "livekit-plugins-google"

    def probe(self) -> Probe:
        cls = _session_class()
        if cls is None:
            return Probe("unsupported", "livekit-plugins-google is not installed")
        if not all(hasattr(cls, name) for name in ("_recv_task", "_main_task")):
            return Probe("unsupported", "the Gemini RealtimeSession has no _recv_task/_main_task")
        if callable(getattr(cls, "_on_connection_established", None)):
            return Probe("native", "a connection that completed its setup is no failed attempt")
        if not _receive_errors_use_the_budget(cls):
            return Probe("native", "a failed receive restarts the connection outside the budget")
        return Probe("patchable", "a connection that completed its setup is not a failed attempt")

    def install(self, patcher: Patcher) -> None:
        install_gemini(patcher)
