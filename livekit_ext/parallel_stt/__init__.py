"""Parallel STT: keep a realtime model for the conversation and hear what the ``stt=`` heard.

With ``AgentSession(llm=<RealtimeModel>, stt=<STT>)`` upstream runs the STT on the session's
audio but drops its transcripts whenever the realtime model transcribes itself
(``AgentActivity.on_interim_transcript`` / ``on_final_transcript`` return early).
``enable_parallel_stt(session)`` forwards exactly those dropped transcripts as
``user_input_transcribed`` with ``source="stt"`` and the ``item_id`` of the realtime utterance
they overlap in time. Nothing else changes: the forwarded event goes to the session's
listeners only, never into the chat context, the turn detector or the realtime model, and
upstream's own listeners that would act on it (the room's user transcription, IVR loop
detection) keep seeing only what they saw before.

A parallel STT that fails must not end the conversation it is not part of: its unrecoverable
errors are reported as recoverable (releases up to 1.5 close the session on the first one,
later ones after a few), and on releases that do not recreate a failed STT stream themselves
it is restarted.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

from .. import _funnel
from .. import _touchpoints as tp
from .._engine import ENGINE, Feature, Probe
from .._wrapping import ACTIVE, Patcher
from ..transcripts import TranscriptLog, _check_window, session_log
from . import forwarding, restarts, turns
from .state import FEATURE, PARALLEL

logger = logging.getLogger("livekit_ext")

SWITCH = tp.read(
    "the patch series' own switch: native when present", f"{tp.SESSION}.parallel_stt", optional=True
)


def enable_parallel_stt(session: Any, *, window: int = 256) -> TranscriptLog:
    """Forward the ``stt=`` transcripts a realtime ``llm=`` drops; before or after ``start``.

    Returns the session's :class:`TranscriptLog` (also reachable with ``transcripts``).
    Idempotent; a second call only changes ``window``.
    """
    _check_window(window)
    state = PARALLEL.of(session)
    state.log = log = session_log(session, window=window)
    if not state.enabled:
        state.enabled = True
        # this session's transcripts only: other sessions' funnel runs no parallel STT hook
        _funnel.add_stamper(session, forwarding.stamp_upstreams_transcript(state))
        _funnel.add_observer(session, state.note_transcribed)
    if _native():
        session.parallel_stt = True
    elif FEATURE not in ACTIVE:
        reason = getattr(ENGINE.status().get(FEATURE), "reason", "not registered")
        logger.warning(
            "livekit_ext: enable_parallel_stt(): the parallel_stt feature is not applied (%s); "
            "STT transcripts stay dropped until livekit_ext.apply() succeeds",
            reason,
        )
    if getattr(session, "stt", None) is None:
        logger.warning(
            "livekit_ext: enable_parallel_stt(): the session has no stt=; only an agent with "
            "its own stt will transcribe in parallel"
        )
    return log


def _native() -> bool:
    """Whether upstream forwards a parallel STT's transcripts itself: ``AgentSession`` has the
    ``parallel_stt`` switch (read/write, before or after ``start``) of the upstream patch."""
    switch = inspect.getattr_static(forwarding.FUNNEL.owner(importing=True), SWITCH.name, None)
    return isinstance(switch, property) and switch.fset is not None


class ParallelSTT(Feature):
    name = FEATURE
    description = "STT transcripts next to a realtime model's, matched to its utterances"
    requires = (_funnel.IDENTITY,)
    touchpoints = (
        SWITCH,
        *tp.declared(vars(forwarding)),
        *tp.declared(vars(turns)),
        *tp.declared(vars(restarts)),
    )

    def probe(self) -> Probe:
        if _native():
            return Probe("native", "AgentSession.parallel_stt forwards the STT's transcripts")
        return Probe(
            "patchable",
            "forwards the STT transcripts a transcribing realtime model drops; "
            + restarts.RESTART_REASONS[restarts.restart_mode()],
        )

    def install(self, patcher: Patcher) -> None:
        forwarding.install(patcher)
        turns.install(patcher)
        restarts.install(patcher)
