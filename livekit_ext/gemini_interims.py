"""Gemini interim input transcriptions (opt-in): text while the user speaks.

Gemini Live sends ``interimInputTranscription`` messages, low-latency text of the utterance in
progress, which livekit-plugins-google ignores. For a model opted in with
``gemini_interim_transcripts(model)`` (before or after its sessions start), each one becomes
the session's own ``input_audio_transcription_completed(is_final=False)``, so it reaches
``user_input_transcribed`` with the utterance's identity like any interim. The final
``inputTranscription`` text supersedes them; later interims of that utterance are stale.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any

from . import _touchpoints as tp
from ._engine import Feature, Probe
from ._funnel import IDENTITY
from ._state import Attached, BoundedMap
from ._timeline import parse_duration
from ._wrapping import ACTIVE, Patcher, hook_errors_logged, when_active
from .transcript_identity import gemini
from .transcript_identity.realtime_speech import REALTIME, RealtimeSpeech

logger = logging.getLogger("livekit_ext")

FEATURE = "gemini_interims"

RECV_TASK = tp.wrap(
    "each Gemini session: its messages, read after transcript identity names utterances",
    f"{tp.GEMINI}:RealtimeSession._recv_task",
)
SESSION_MODEL = tp.attr(
    "the session's model, opted in or not", f"{tp.GEMINI}:RealtimeSession._realtime_model"
)
NATIVE_OPTION = tp.attr(
    "the patch series: the plugin's own interim_input_transcription option (native)",
    f"{tp.GEMINI}:_RealtimeOptions.interim_input_transcription",
    optional=True,
)
INPUT_TRANSCRIPTION = tp.call(
    "an interim, emitted as the session's own realtime transcript",
    "livekit.agents.llm:InputTranscriptionCompleted",
)


class _OptIn:
    """A Gemini RealtimeModel whose interim input transcriptions are forwarded."""

    __slots__ = ()


class _Interims:
    """One Gemini session's interims: the text so far per item, and the items whose final
    text arrived (their later interims are stale)."""

    def __init__(self) -> None:
        self.texts: BoundedMap[str] = BoundedMap()
        self.closed: BoundedMap[float] = BoundedMap()


OPTED: Attached[_OptIn] = Attached("gemini_interims", _OptIn)
INTERIMS: Attached[_Interims] = Attached("gemini_interims", _Interims)


def gemini_interim_transcripts(model: Any) -> Any:
    """Opt in: Gemini's ``interimInputTranscription`` (low-latency text while the user speaks)
    becomes ``user_input_transcribed(is_final=False)`` for sessions of ``model``.

    Each one is forwarded with the utterance's ``item_id`` and ``speech_started_at`` and
    ``source="realtime"``, carrying the whole text so far; the final ``inputTranscription``
    text supersedes them and the final event at turn end is unchanged. google-genai (checked:
    3.6.1) has no ``LiveConnectConfig`` field that asks for interim input transcription (the
    service sends it where the model supports it), so the connect config is left as it is;
    this is logged once at INFO. Input transcription must be on (the plugin's default).
    Returns ``model``.
    """
    OPTED.of(model)
    with hook_errors_logged("switching on the plugin's interim input transcription"):
        # where the plugin forwards interims itself (patches/), its own switch turns them on
        opts: Any = getattr(model, "_opts", None)
        if isinstance(getattr(opts, "interim_input_transcription", None), bool):
            opts.interim_input_transcription = True
    with hook_errors_logged("reading google-genai's LiveConnectConfig"):
        from google.genai import types

        fields = [f for f in types.LiveConnectConfig.model_fields if "interim" in f]
        logger.info(
            "livekit_ext: Gemini interim input transcriptions are forwarded; google-genai's "
            "LiveConnectConfig has %s, so nothing is set in the connect config",
            f"fields {fields} (not set by livekit_ext)" if fields else "no field to request them",
        )
    return model


@when_active(FEATURE)
def _recv_task(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
    """Read this session's messages after transcript identity has named utterances from them
    (so an interim knows the name a final text gave, in any order of installation)."""
    with hook_errors_logged("attaching to a Gemini live connection"):
        speech = REALTIME.of(instance)
        interims = INTERIMS.of(instance)
        gemini.after_each_message(
            instance, FEATURE, lambda message: _on_message(instance, speech, interims, message)
        )
    return wrapped(*args, **kwargs)


def _on_message(session: Any, speech: RealtimeSpeech, interims: _Interims, message: Any) -> None:
    """Before the plugin sees a message: forward an interim of an opted-in model (checked per
    message: a model may opt in after its sessions connected)."""
    content = getattr(message, "server_content", None)
    if content is None or FEATURE not in ACTIVE:
        return
    if OPTED.get(getattr(session, "_realtime_model", None)) is None:
        return
    final = getattr(content, "input_transcription", None)
    if final is not None and getattr(final, "text", None):
        if (item_id := gemini.utterance_item(session, speech)) is not None:
            interims.closed[item_id] = time.time()
        return
    interim = getattr(content, "interim_input_transcription", None)
    text = getattr(interim, "text", None) if interim is not None else None
    if not text:
        return
    # no voiceActivity before: the utterance is named at its first text
    item_id = gemini.utterance_item(session, speech) or gemini.name_utterance(
        speech, parse_duration(getattr(interim, "start_offset", None))
    )
    if item_id in interims.closed:
        logger.debug("livekit_ext: an interim Gemini transcript after the final text ignored")
        return
    before = interims.texts.get(item_id, "")
    merged = merge_interim(before, text)
    if merged == before:
        return
    interims.texts[item_id] = merged
    from livekit.agents import llm

    session.emit(
        "input_audio_transcription_completed",
        llm.InputTranscriptionCompleted(item_id=item_id, transcript=merged, is_final=False),
    )


def _plugin_forwards_interims() -> bool:
    """Whether the plugin's options have the series' ``interim_input_transcription``."""
    options = tp.resolve(NATIVE_OPTION.paths[0].rpartition(".")[0])
    if not dataclasses.is_dataclass(options):
        return False
    return "interim_input_transcription" in {f.name for f in dataclasses.fields(options)}


def merge_interim(before: str, text: str) -> str:
    """The whole text so far, from an interim that is either the whole text or a delta.

    A text that extends what came before is the whole text; one that starts with a space
    (Gemini's transcription chunks do) is a delta appended to it; anything else is a revised
    whole text.
    """
    if not before:
        return text.strip()
    if text.strip().startswith(before):
        return text.strip()
    if text[:1].isspace():
        return (before + text).rstrip()
    return text.strip()


class GeminiInterims(Feature):
    name = FEATURE
    description = (
        "Gemini interim input transcriptions reach user_input_transcribed while the user speaks "
        "(opt-in per model: gemini_interim_transcripts(model))"
    )
    requires = (IDENTITY,)
    trigger = "livekit.plugins.google"
    distribution = "livekit-plugins-google"
    touchpoints = tp.declared(globals())

    def probe(self) -> Probe:
        if _plugin_forwards_interims():
            return Probe("native", "the plugin forwards interims (interim_input_transcription)")
        return Probe("patchable", "forwards interimInputTranscription for models opted in to it")

    def install(self, patcher: Patcher) -> None:
        patcher.wrap(RECV_TASK, _recv_task)
