"""Parallel STT, one session's state: whether it is on, the STT's utterances, the realtime
model's completed ones, and the STT transcript being handled now."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .._state import Attached
from ..transcripts import TranscriptLog
from ..typed_identity import identity
from .matching import Completed, SttUtterances

FEATURE = "parallel_stt"


@dataclass
class HookCall:
    """An STT transcript the activity is handling; ``forwarded`` once upstream emitted it."""

    activity: Any
    state: SessionState
    stt_ev: Any
    is_final: bool
    forwarded: bool = False


@dataclass
class SessionState:
    """One session's parallel STT."""

    log: TranscriptLog | None = None
    enabled: bool = False
    utterances: SttUtterances = field(default_factory=SttUtterances)
    completed: Completed = field(default_factory=Completed)
    """Realtime item -> when its final transcript arrived (an end for providers with no stop)."""
    hook_call: HookCall | None = None
    """The STT transcript the activity is handling now: set around upstream's handler, which
    calls the funnel synchronously when it forwards the transcript itself."""

    def note_transcribed(self, ev: Any) -> None:
        """A realtime final went out: when it completed is an end for matching by time."""
        if ev.is_final:
            ident = identity(ev)
            if ident.source == "realtime" and ident.item_id is not None:
                self.completed.note(ident.item_id, ev.created_at)


PARALLEL: Attached[SessionState] = Attached("parallel_stt", SessionState)


def enabled_state(session: Any) -> SessionState | None:
    state = PARALLEL.get(session)
    return state if state is not None and state.enabled else None


def parallel_state(activity: Any) -> SessionState | None:
    """The session's state when its STT runs next to a realtime model and forwarding is on."""
    state = enabled_state(getattr(activity, "_session", None))
    if state is None:
        return None
    return state if is_realtime(getattr(activity, "llm", None)) else None


def transcribes(activity: Any) -> bool:
    """Whether the activity's realtime model transcribes the user itself."""
    capabilities = getattr(getattr(activity, "llm", None), "capabilities", None)
    return bool(getattr(capabilities, "user_transcription", False))


def is_realtime(model: Any) -> bool:
    from livekit.agents import llm

    return isinstance(model, llm.RealtimeModel)
