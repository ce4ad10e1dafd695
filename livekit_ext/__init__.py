"""livekit-ext: per-utterance transcript identity, Azure GA fixes and parallel STT for
livekit-agents.

``import livekit_ext`` imports no livekit module itself: each feature is applied when the
module it patches is imported by the application (at once if it already is), unless
``LIVEKIT_EXT_DISABLE=1``. ``status()`` says what is in effect and why.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ._engine import ENGINE, FeatureStatus
from .azure import AzureExplicitNulls
from .gemini_interims import GeminiInterims, gemini_interim_transcripts
from .gemini_malformed_frames import GeminiMalformedFrames
from .gemini_reconnects import GeminiReconnects
from .job_processes import JobProcesses
from .malformed_frames import MalformedFrames
from .parallel_stt import ParallelSTT, enable_parallel_stt
from .transcript_identity import TranscriptIdentity
from .transcripts import TranscriptLog, transcripts
from .typed_identity import Identity, Source, identity
from .utterance_segments import UtteranceSegments, utterance_segments
from .utterance_traces import UtteranceTraces

if TYPE_CHECKING:
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
    "gemini_interim_transcripts",
    "identity",
    "revert",
    "status",
    "transcripts",
    "utterance_segments",
]

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # Utterances is a livekit EventEmitter: importing it imports livekit.rtc, which an agent
    # pays only once it uses Utterances (``import livekit_ext`` imports no livekit module)
    if name in ("Utterance", "Utterances"):
        from . import utterances

        return getattr(utterances, name)
    raise AttributeError(f"module 'livekit_ext' has no attribute {name!r}")


ENGINE.register(TranscriptIdentity())
ENGINE.register(ParallelSTT())
ENGINE.register(AzureExplicitNulls())
ENGINE.register(MalformedFrames())
ENGINE.register(GeminiMalformedFrames())
ENGINE.register(GeminiReconnects())
ENGINE.register(GeminiInterims())
ENGINE.register(UtteranceSegments())
ENGINE.register(JobProcesses())
ENGINE.register(UtteranceTraces())


def apply(*features: str) -> dict[str, FeatureStatus]:
    """Apply every feature (or the named ones, with what they require). Idempotent.

    Each is installed when the module it patches is imported, at once if it already is.
    """
    ENGINE.apply(features or None)
    return ENGINE.status(import_core=False)


def revert(*features: str) -> None:
    """Restore the original objects exactly, for every feature (or the named ones and the
    features that require them). Idempotent; ``apply()`` works again after it."""
    ENGINE.revert(features or None)


def status() -> dict[str, FeatureStatus]:
    """Feature name -> ``"native" | "patched" | "unsupported" | "disabled"`` (``.reason``).

    "patched" means in effect for the sessions started from now on.
    """
    return ENGINE.status()


def _disabled_by_environment() -> bool:
    return os.environ.get("LIVEKIT_EXT_DISABLE", "").strip().lower() in ("1", "true", "yes")


if _disabled_by_environment():
    ENGINE.disable("LIVEKIT_EXT_DISABLE=1 is set; livekit_ext.apply() applies anyway")
else:
    ENGINE.apply()  # not apply(): its status answer (package metadata lookups) is not wanted here
