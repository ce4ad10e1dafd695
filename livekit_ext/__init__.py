"""livekit-ext: per-utterance transcript identity, Azure GA fixes and parallel STT for
livekit-agents.

``import livekit_ext`` applies every feature that fits the installed livekit-agents (unless
``LIVEKIT_EXT_DISABLE=1``); ``status()`` says what was done and why.
"""

from __future__ import annotations

import os

from ._registry import ENGINE, FeatureStatus
from .azure import AzureExplicitNulls
from .gemini_reconnects import GeminiReconnects
from .identity import Identity, Source, identity
from .malformed_frames import MalformedFrames
from .parallel_stt import ParallelSTT, TranscriptLog, enable_parallel_stt, transcripts
from .transcript_identity import TranscriptIdentity
from .utterances import Utterance, Utterances

__all__ = [
    "FeatureStatus",
    "Identity",
    "Source",
    "TranscriptLog",
    "Utterance",
    "Utterances",
    "apply",
    "enable_parallel_stt",
    "identity",
    "revert",
    "status",
    "transcripts",
]

__version__ = "0.1.0"

ENGINE.register(TranscriptIdentity())
ENGINE.register(AzureExplicitNulls())
ENGINE.register(ParallelSTT())
ENGINE.register(MalformedFrames())
ENGINE.register(GeminiReconnects())


def apply() -> dict[str, FeatureStatus]:
    """Apply every feature that fits the installed versions. Idempotent."""
    return ENGINE.apply()


def revert() -> None:
    """Restore every original object exactly. Idempotent; ``apply()`` works again after it."""
    ENGINE.revert()


def status() -> dict[str, FeatureStatus]:
    """Feature name -> ``"native" | "patched" | "unsupported"`` (with ``.reason``)."""
    return ENGINE.status()


if os.environ.get("LIVEKIT_EXT_DISABLE", "").strip().lower() not in ("1", "true", "yes"):
    apply()
