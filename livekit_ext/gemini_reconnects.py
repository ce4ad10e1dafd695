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

import importlib
import inspect
import logging
from collections.abc import Callable
from typing import Any

from . import _touchpoints as tp
from ._engine import Feature, Probe
from ._wrapping import Patcher, hook_errors_logged, when_active

logger = logging.getLogger("livekit_ext")

FEATURE = "gemini_reconnects"

RECV_TASK = tp.wrap(
    "each Gemini connection: a working one is not a failed attempt",
    f"{tp.GEMINI}:RealtimeSession._recv_task",
)
MAIN_TASK = tp.read(
    "probe: the connection loop the retry budget belongs to",
    f"{tp.GEMINI}:RealtimeSession._main_task",
)
NATIVE_HOOK = tp.read(
    "the patch series' connection hook: native when present",
    f"{tp.GEMINI}:RealtimeSession._on_connection_established",
    optional=True,
)
NUM_RETRIES = tp.attr(
    "the retry count kept one below the budget",
    f"{tp.GEMINI}:RealtimeSession._num_retries",
    optional=True,
)
OPTIONS = tp.attr(
    "the session's options: conn_options.max_retry", f"{tp.GEMINI}:RealtimeSession._opts"
)


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


def _receive_errors_use_the_budget(cls: type) -> bool:
    """Whether the receive task hands its error to the retry loop (``_session_error``, 1.6+);
    before that a failed receive restarts the connection without counting a retry."""
    recv = inspect.unwrap(inspect.getattr_static(cls, "_recv_task"))
    return "_session_error" in getattr(getattr(recv, "__code__", None), "co_names", ())


class GeminiReconnects(Feature):
    name = FEATURE
    description = "server-side Gemini disconnects of working connections never end the session"
    trigger = "livekit.plugins.google"
    distribution = "livekit-plugins-google"
    touchpoints = tp.declared(globals())

    def probe(self) -> Probe:
        importlib.import_module(tp.GEMINI)  # the plugin's own import, done by the plugin
        if NATIVE_HOOK.resolvable():
            return Probe("native", "a connection that completed its setup is no failed attempt")
        if not _receive_errors_use_the_budget(RECV_TASK.owner()):
            return Probe("native", "a failed receive restarts the connection outside the budget")
        return Probe("patchable", "a connection that completed its setup is not a failed attempt")

    def install(self, patcher: Patcher) -> None:
        patcher.wrap(RECV_TASK, _recv_task)
