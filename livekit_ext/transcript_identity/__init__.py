"""Transcript identity: ``item_id``, ``speech_started_at`` and ``source`` on every
``UserInputTranscribedEvent``.

Context is captured where it is born, one module per upstream source, and every event is
enriched at the one funnel they all pass through (``livekit_ext._funnel``):

- ``fields``: the three fields, added to the event where the release lacks them;
- ``realtime``: any realtime plugin, through the activity's realtime handlers;
- ``openai``: OpenAI / Azure OpenAI / xAI / Azure Voice Live speech events (the item id);
- ``gemini``: Gemini Live's voiceActivity and transcription offsets (the plugin ignores them);
- ``stt_turns``: STT pipelines, one id per user turn.

Upstream's own values (``item_id`` from 1.6.6 on) are never overwritten.
"""

from __future__ import annotations

from .. import _speech
from .. import _touchpoints as tp
from .._engine import Feature, Probe
from .._funnel import IDENTITY, funnel, observers_to_emit
from .._wrapping import Patcher
from ..transcripts import record_from_start
from . import fields, gemini, openai, realtime, stt_turns

FEATURE = IDENTITY

FUNNEL = tp.wrap("the funnel every user transcript passes", f"{tp.SESSION}._user_input_transcribed")


class TranscriptIdentity(Feature):
    name = FEATURE
    description = "item_id, speech_started_at and source on every user_input_transcribed event"
    touchpoints = (
        *tp.declared(globals()),
        *tp.declared(vars(_speech)),
        *tp.declared(vars(fields)),
        *tp.declared(vars(realtime)),
        *tp.declared(vars(stt_turns)),
        *tp.declared(vars(openai)),
        *tp.declared(vars(gemini)),
    )
    parts = {
        "livekit.plugins.google": "install_gemini",
        **{module: "install_openai" for module in openai.PARTS},
    }

    def probe(self) -> Probe:
        missing = fields.missing_fields()
        if not missing:
            signals = (
                "and the session emits user_speech_started/stopped"
                if _speech.upstream_has_speech_events()
                else "(no speech-start signal: Utterances starts at the first transcript)"
            )
            if _speech.upstream_says_what_stopped():
                signals += ", each stop saying what it comes from"
            return Probe(
                "native", f"UserInputTranscribedEvent already carries the identity fields {signals}"
            )
        return Probe("patchable", f"adds {', '.join(missing)} to UserInputTranscribedEvent")

    def install(self, patcher: Patcher) -> None:
        added = fields.add_fields(patcher)
        patcher.wrap_inline(FUNNEL, funnel(added, set_up=record_from_start))
        patcher.on_undo(observers_to_emit)
        realtime.install(patcher)
        stt_turns.install(patcher)

    def install_openai(self, patcher: Patcher) -> None:
        """An OpenAI-protocol engine (or a subclass's) module was imported."""
        openai.install(patcher)

    def install_gemini(self, patcher: Patcher) -> None:
        """The Gemini plugin was imported."""
        gemini.install(patcher)
