"""Every upstream object livekit_ext reads, wraps, replaces or calls — declared once.

A touchpoint names one upstream object by ``"module:Qual.name"``. Several paths mean the
object moved between releases; the touchpoint holds when any one of them resolves. Kinds:

- ``wrap``: a function or method we replace with a wrapper that calls the original;
- ``replace``: a module attribute we swap (and put back on revert);
- ``call``: a function or method we call;
- ``read``: a class or module attribute we read;
- ``attr``: an attribute upstream sets on its instances (``self.x = ...``) that we read.

Features check their touchpoints before installing (``missing()``): a missing one makes the
feature "unsupported", naming it, instead of an exception at run time. ``scripts/sweep.py``
checks the same table against the source of every release in the supported range.

Pure data: importing this module imports nothing of livekit.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

Kind = Literal["wrap", "replace", "call", "read", "attr"]


@dataclass(frozen=True)
class Touchpoint:
    feature: str
    paths: tuple[str, ...]
    kind: Kind
    why: str
    optional: bool = False
    """The feature works without it (a plugin's part is skipped, a fallback is used)."""

    @property
    def modules(self) -> tuple[str, ...]:
        return tuple(path.partition(":")[0] for path in self.paths)

    def __str__(self) -> str:
        return " | ".join(self.paths)


def _tp(feature: str, kind: Kind, why: str, *paths: str, optional: bool = False) -> Touchpoint:
    return Touchpoint(feature=feature, paths=paths, kind=kind, why=why, optional=optional)


AGENTS = "livekit.agents"
SESSION = "livekit.agents.voice.agent_session:AgentSession"
ACTIVITY = "livekit.agents.voice.agent_activity:AgentActivity"
EVENTS = "livekit.agents.voice.events"
RECOGNITION = "livekit.agents.voice.audio_recognition"
OPENAI_ENGINES = (
    "livekit.agents.llm._realtime.openai",  # 1.8+: the engine lives in livekit-agents
    "livekit.plugins.openai.realtime.realtime_model",
)
OPENAI_PLUGIN = "livekit.plugins.openai.realtime.realtime_model"
OPENAI_BETA = "livekit.plugins.openai.realtime.realtime_model_beta"
GEMINI = "livekit.plugins.google.realtime.realtime_api"


def _engine(qualname: str) -> tuple[str, ...]:
    return tuple(f"{module}:{qualname}" for module in OPENAI_ENGINES)


TI = "transcript_identity"
PS = "parallel_stt"
AZ = "azure_explicit_nulls"
MF = "malformed_frames"
US = "utterance_segments"
ROOM_OUTPUT = "livekit.agents.voice.room_io._output"

TOUCHPOINTS: tuple[Touchpoint, ...] = (
    # -- transcript_identity: capture where born, enrich at the funnel ------------------------
    _tp(
        TI,
        "read",
        "the event that gains the identity fields",
        f"{EVENTS}:UserInputTranscribedEvent",
    ),
    _tp(
        TI, "wrap", "the funnel every user transcript passes", f"{SESSION}._user_input_transcribed"
    ),
    _tp(
        TI,
        "wrap",
        "a session started with the extension in effect (else: a warning, not silence)",
        f"{SESSION}.start",
    ),
    _tp(
        TI,
        "attr",
        "transcripts(): has the session started (the log may have missed some)",
        f"{SESSION}._started",
        optional=True,
    ),
    _tp(
        TI,
        "wrap",
        "a realtime transcript: its item id",
        f"{ACTIVITY}._on_input_audio_transcription_completed",
    ),
    _tp(
        TI,
        "wrap",
        "the empty interim at speech stop: its item",
        f"{ACTIVITY}._on_input_speech_stopped",
    ),
    _tp(
        TI,
        "read",
        "Azure Voice Live (1.8+): its SDK events, emitted as azure_server_event_received, carry "
        "the speech start's item id and audio offset",
        "livekit.plugins.azure.realtime.realtime_model:RealtimeSession._handle_server_event",
        optional=True,
    ),
    _tp(
        TI,
        "wrap",
        "any realtime plugin's speech start (where no provider-specific source is better)",
        f"{ACTIVITY}._on_input_speech_started",
    ),
    _tp(
        TI,
        "wrap",
        "an activity's realtime session serves its AgentSession: speech signals go there",
        f"{ACTIVITY}.start",
    ),
    _tp(TI, "wrap", "an STT pipeline's end of speech", f"{ACTIVITY}.on_end_of_speech"),
    _tp(TI, "wrap", "an STT pipeline interim", f"{ACTIVITY}.on_interim_transcript"),
    _tp(TI, "wrap", "an STT pipeline final", f"{ACTIVITY}.on_final_transcript"),
    _tp(TI, "wrap", "the local VAD's start of speech", f"{ACTIVITY}.on_start_of_speech"),
    _tp(
        TI,
        "wrap",
        "an STT turn ends: its user message takes the turn's id",
        f"{ACTIVITY}.on_end_of_turn",
    ),
    _tp(
        TI,
        "wrap",
        "a preemptive reply's user message takes the turn's id",
        f"{ACTIVITY}.on_preemptive_generation",
        optional=True,
    ),
    _tp(
        TI,
        "wrap",
        "audio pushed to the realtime model: the offset timeline",
        f"{ACTIVITY}.push_audio",
    ),
    _tp(TI, "attr", "the activity's realtime session", f"{ACTIVITY}._rt_session"),
    _tp(TI, "attr", "the activity's AgentSession", f"{ACTIVITY}._session"),
    _tp(
        TI,
        "wrap",
        "a user ChatMessage of an STT turn takes the turn's id (wrapped at the first STT turn)",
        "livekit.agents.llm.chat_context:ChatMessage.__init__",
    ),
    _tp(
        TI,
        "wrap",
        "each realtime session: its track (Azure Voice Live: observe its SDK events)",
        "livekit.agents.llm.realtime:RealtimeSession.__init__",
    ),
    _tp(
        TI,
        "wrap",
        "OpenAI/Azure/xAI speech start: the item id and audio offset",
        *_engine("RealtimeSession._handle_input_audio_buffer_speech_started"),
    ),
    _tp(
        TI,
        "wrap",
        "OpenAI/Azure/xAI speech stop: the item id and audio offset",
        *_engine("RealtimeSession._handle_input_audio_buffer_speech_stopped"),
    ),
    _tp(
        TI,
        "wrap",
        "an OpenAI-protocol (re)connection: audio offsets count from zero again",
        *_engine("RealtimeSession._create_ws_conn"),
    ),
    *(
        _tp(
            TI,
            "wrap",
            "an engine subclass's own speech handlers (xAI finalizes the previous utterance "
            "before calling the engine's): the speech is signalled before that",
            f"{module}:RealtimeSession.{name}",
            optional=True,
        )
        for module in (
            "livekit.plugins.xai.realtime.realtime_model",
            "livekit.agents.inference.realtime.openai",
        )
        for name in (
            "_handle_input_audio_buffer_speech_started",
            "_handle_input_audio_buffer_speech_stopped",
        )
    ),
    *(
        _tp(
            TI,
            "wrap",
            "the beta engine (to 1.4): the same speech handlers and connection",
            f"{OPENAI_BETA}:RealtimeSessionBeta.{name}",
            optional=True,
        )
        for name in (
            "_handle_input_audio_buffer_speech_started",
            "_handle_input_audio_buffer_speech_stopped",
            "_create_ws_conn",
        )
    ),
    _tp(TI, "call", "fresh utterance ids shaped like upstream's", "livekit.agents.utils:shortuuid"),
    _tp(
        TI,
        "wrap",
        "each Gemini connection: observe voiceActivity",
        f"{GEMINI}:RealtimeSession._recv_task",
        optional=True,
    ),
    _tp(
        TI,
        "wrap",
        "a Gemini generation takes the id reserved at speech start",
        f"{GEMINI}:RealtimeSession._start_new_generation",
        optional=True,
    ),
    _tp(
        TI,
        "attr",
        "the generation whose input id names the utterance",
        f"{GEMINI}:RealtimeSession._current_generation",
        optional=True,
    ),
    _tp(
        TI,
        "attr",
        "the client-made id of a Gemini generation: the utterance's item id",
        f"{GEMINI}:_ResponseGeneration.input_id",
        optional=True,
    ),
    _tp(
        TI,
        "attr",
        "opt-in interim transcripts: the session's model, opted in or not",
        f"{GEMINI}:RealtimeSession._realtime_model",
        optional=True,
    ),
    _tp(
        TI,
        "attr",
        "an interim belongs to the open generation's utterance, not to a finished one",
        f"{GEMINI}:_ResponseGeneration._done",
        optional=True,
    ),
    _tp(
        TI,
        "call",
        "a Gemini interim input transcription, emitted as the session's own interim",
        "livekit.agents.llm:InputTranscriptionCompleted",
    ),
    # -- parallel_stt ------------------------------------------------------------------------
    _tp(
        PS,
        "wrap",
        "an STT interim a transcribing realtime model drops",
        f"{ACTIVITY}.on_interim_transcript",
    ),
    _tp(
        PS,
        "wrap",
        "an STT final a transcribing realtime model drops",
        f"{ACTIVITY}.on_final_transcript",
    ),
    _tp(PS, "wrap", "a parallel STT's fatal error becomes recoverable", f"{ACTIVITY}._on_error"),
    _tp(PS, "wrap", "a turn committed from the STT's words", f"{ACTIVITY}.on_end_of_turn"),
    _tp(
        PS,
        "wrap",
        "keep the STT's committed words out of the chat context (wrapped at the first such turn)",
        f"{SESSION}._conversation_item_added",
    ),
    _tp(
        PS,
        "call",
        "emit a forwarded STT transcript through the funnel",
        f"{SESSION}._user_input_transcribed",
    ),
    _tp(
        PS, "wrap", "the STT's START/END_OF_SPEECH", f"{RECOGNITION}:AudioRecognition._on_stt_event"
    ),
    _tp(
        PS,
        "read",
        "1.6.6+: upstream recreates a failed STT stream itself",
        f"{RECOGNITION}:_STT_RECONNECT_INTERVAL",
        optional=True,
    ),
    _tp(
        PS,
        "wrap",
        "1.5.2-1.6.5: the STT pipeline's pump is created here",
        f"{RECOGNITION}:AudioRecognition.update_stt",
        f"{RECOGNITION}:AudioRecognition._update_stt",
        optional=True,
    ),
    _tp(
        PS,
        "wrap",
        "1.5.2-1.6.5: a failed STT pump is run again",
        f"{RECOGNITION}:_STTPipeline._stt_pump",
        optional=True,
    ),
    _tp(
        PS,
        "wrap",
        "1.4-1.5.1: a failed STT task is run again",
        f"{RECOGNITION}:AudioRecognition._stt_task",
        optional=True,
    ),
    _tp(
        PS,
        "wrap",
        "the room's user transcription ignores forwarded STT events",
        "livekit.agents.voice.room_io.room_io:RoomIO._on_user_input_transcribed",
        optional=True,
    ),
    _tp(
        PS,
        "wrap",
        "IVR loop detection ignores forwarded STT events",
        "livekit.agents.voice.ivr.ivr_activity:IVRActivity._on_user_input_transcribed",
        optional=True,
    ),
    _tp(PS, "attr", "the activity's model: is it realtime, does it transcribe", f"{ACTIVITY}.llm"),
    _tp(PS, "attr", "the agent whose chat context holds the user messages", f"{ACTIVITY}._agent"),
    _tp(
        PS,
        "read",
        "the patch series' own switch: native when present",
        f"{SESSION}.parallel_stt",
        optional=True,
    ),
    _tp(
        PS,
        "attr",
        "the audio recognition's session: its STT events belong to it",
        f"{RECOGNITION}:AudioRecognition._session",
    ),
    _tp(
        PS,
        "attr",
        "a closing session's STT is not restarted",
        f"{SESSION}._closing",
        optional=True,
    ),
    _tp(
        PS,
        "attr",
        "a closing session's STT is not restarted",
        f"{SESSION}._closing_task",
        optional=True,
    ),
    _tp(
        PS,
        "attr",
        "the chat context an STT-committed user message is taken back out of",
        "livekit.agents.voice.agent:Agent._chat_ctx",
    ),
    # -- azure_explicit_nulls ---------------------------------------------------------------
    _tp(
        AZ,
        "wrap",
        "route GA/no api-version to the GA model, keep None",
        f"{OPENAI_PLUGIN}:RealtimeModel.with_azure",
    ),
    _tp(
        AZ,
        "replace",
        "Azure without api-version: /openai/v1/realtime?model=",
        *(f"{m}:process_base_url" for m in OPENAI_ENGINES),
    ),
    _tp(
        AZ,
        "wrap",
        "the legacy flat session.update keeps explicit nulls; 1.5.1-1.5.2 (the probe reads "
        "whether it looks at api_version) flatten without an api-version too: GA shape there",
        *_engine("RealtimeSession._wrap_session_update"),
        optional=True,
    ),
    _tp(
        AZ,
        "wrap",
        "remember what the caller gave; capabilities follow",
        f"{OPENAI_PLUGIN}:RealtimeModel.update_options",
    ),
    _tp(
        AZ,
        "wrap",
        "1.4 preview model: capabilities follow update_options",
        f"{OPENAI_BETA}:RealtimeModelBeta.update_options",
        optional=True,
    ),
    _tp(
        AZ,
        "wrap",
        "1.4: send only the settings the caller gave",
        *_engine("RealtimeSession.update_options"),
    ),
    _tp(
        AZ,
        "attr",
        "the options a session diffs update_options against, its own from 1.5.7; without them "
        "(1.5.1-1.5.6) it diffs against its model's, which the wrapper rewinds for the call",
        *_engine("RealtimeSession._opts"),
        optional=True,
    ),
    _tp(
        AZ,
        "read",
        "probe: does the session's constructor give it options of its own (self._opts)",
        *_engine("RealtimeSession.__init__"),
    ),
    _tp(
        AZ,
        "attr",
        "the model whose options a session without its own reads (1.5.1-1.5.6)",
        *_engine("RealtimeSession._realtime_model"),
    ),
    _tp(AZ, "attr", "the model's options (None means off)", *_engine("RealtimeModel._opts")),
    _tp(
        AZ,
        "attr",
        "the model's capabilities (user_transcription, turn_detection)",
        *_engine("RealtimeModel._capabilities"),
    ),
    _tp(
        AZ,
        "call",
        "probe: does upstream's flat conversion keep an explicit None",
        *(f"{m}:_oai_session_to_azure" for m in OPENAI_ENGINES),
        optional=True,
    ),
    # -- utterance_segments -----------------------------------------------------------------
    _tp(
        US,
        "wrap",
        "RoomIO's user transcript loop reads each event after its segment id is set",
        "livekit.agents.voice.room_io.room_io:RoomIO._forward_user_transcript",
    ),
    _tp(
        US,
        "attr",
        "RoomIO's user transcription output",
        "livekit.agents.voice.room_io.room_io:RoomIO._user_tr_output",
    ),
    _tp(
        US,
        "attr",
        "the AgentSession a RoomIO serves",
        "livekit.agents.voice.room_io.room_io:RoomIO._agent_session",
    ),
    _tp(
        US,
        "attr",
        "the output's legacy and text-stream sinks",
        f"{ROOM_OUTPUT}:_ParticipantTranscriptionOutput.__outputs",
    ),
    _tp(
        US,
        "wrap",
        "a new text-stream segment keeps the utterance's id",
        f"{ROOM_OUTPUT}:_ParticipantStreamTranscriptionOutput._reset_state",
    ),
    _tp(
        US,
        "wrap",
        "a new legacy segment keeps the utterance's id",
        f"{ROOM_OUTPUT}:_ParticipantLegacyTranscriptionOutput._reset_state",
    ),
    _tp(
        US,
        "attr",
        "the segment id a sink stamps (lk.segment_id)",
        f"{ROOM_OUTPUT}:_ParticipantStreamTranscriptionOutput._current_id",
        f"{ROOM_OUTPUT}:_ParticipantLegacyTranscriptionOutput._current_id",
    ),
    _tp(
        US,
        "call",
        "the placeholder segment, written by the sink's own writer code",
        f"{ROOM_OUTPUT}:_ParticipantStreamTranscriptionOutput._create_text_writer",
    ),
    _tp(
        US,
        "attr",
        "a final still being published keeps the id it was flushed with",
        f"{ROOM_OUTPUT}:_ParticipantStreamTranscriptionOutput._flush_atask",
        f"{ROOM_OUTPUT}:_ParticipantLegacyTranscriptionOutput._flush_task",
    ),
    # -- malformed_frames -------------------------------------------------------------------
    _tp(
        MF,
        "wrap",
        "the websocket whose text frames are parsed",
        *_engine("RealtimeSession._create_ws_conn"),
    ),
    _tp(
        MF,
        "read",
        "the patch series' frame parser: native when it rejects bad frames",
        *(f"{m}:parse_server_event" for m in OPENAI_ENGINES),
        optional=True,
    ),
)


GR = "gemini_reconnects"
JP = "job_processes"
GMF = "gemini_malformed_frames"

TOUCHPOINTS += (
    # -- malformed_frames (further engines, one parse per frame) ---------------------------
    _tp(
        MF,
        "wrap",
        "1.8 GPT-Live engine: its websocket's frames",
        "livekit.agents.llm._realtime.gpt_live:GPTLiveSession._create_ws_conn",
        optional=True,
    ),
    _tp(
        MF,
        "replace",
        "the engine parses frames with its module's json: ours reuses the one parse",
        *(f"{m}:json" for m in OPENAI_ENGINES),
    ),
    # -- gemini_malformed_frames --------------------------------------------------------------
    _tp(
        GMF,
        "wrap",
        "each Gemini connection: drop a frame google-genai cannot take",
        f"{GEMINI}:RealtimeSession._recv_task",
    ),
    _tp(
        GMF,
        "replace",
        "per connection: the frame google-genai failed on is dropped (google-genai, not in the sweep's wheels)",
        "google.genai.live:AsyncSession._receive",
        optional=True,
    ),
    # -- job_processes ----------------------------------------------------------------------
    _tp(
        JP,
        "wrap",
        "the worker's process pool: its initialize_process_fnc imports livekit_ext first",
        "livekit.agents.ipc.proc_pool:ProcPool.__init__",
    ),
    # -- gemini_reconnects -------------------------------------------------------------------
    _tp(
        GR,
        "wrap",
        "each Gemini connection: a working one is not a failed attempt",
        f"{GEMINI}:RealtimeSession._recv_task",
    ),
    _tp(
        GR,
        "read",
        "probe: the connection loop the retry budget belongs to",
        f"{GEMINI}:RealtimeSession._main_task",
    ),
    _tp(
        GR,
        "attr",
        "the retry count kept one below the budget",
        f"{GEMINI}:RealtimeSession._num_retries",
        optional=True,
    ),
    _tp(
        GR,
        "attr",
        "the session's options: conn_options.max_retry",
        f"{GEMINI}:RealtimeSession._opts",
    ),
)

UT = "utterance_traces"
TRACES = "livekit.agents.telemetry.traces"

TOUCHPOINTS += (
    # -- utterance_traces: the utterance on LiveKit's own spans -----------------------------
    _tp(
        UT,
        "wrap",
        "a tracer provider is set (set_tracer_provider): the per-event hooks go in",
        f"{TRACES}:_DynamicTracer.set_provider",
    ),
    _tp(
        UT,
        "attr",
        "the provider LiveKit's spans go to",
        f"{TRACES}:_DynamicTracer._tracer_provider",
    ),
    _tp(
        UT,
        "call",
        "LiveKit's tracer: a transcript later than the hold gets its own span",
        "livekit.agents.telemetry:tracer",
    ),
    _tp(
        UT,
        "read",
        "probe: native once upstream names the utterance's id itself",
        "livekit.agents.telemetry:trace_types",
    ),
    _tp(UT, "wrap", "a session starts: its utterances are followed", f"{SESSION}.start"),
    _tp(
        UT,
        "wrap",
        "user_speaking is opened here (and ended: its end may wait for the transcript)",
        f"{SESSION}._update_user_state",
    ),
    _tp(UT, "attr", "the open user_speaking span", f"{SESSION}._user_speaking_span"),
    _tp(UT, "attr", "the session's activity", f"{SESSION}._activity"),
    _tp(UT, "attr", "a realtime session holds its user_speaking", f"{ACTIVITY}._rt_session"),
    _tp(UT, "attr", "the activity's AgentSession (its utterances)", f"{ACTIVITY}._session"),
    _tp(
        UT,
        "wrap",
        "a realtime generation's agent_turn: the item it answers, a link to it",
        f"{ACTIVITY}._realtime_generation_task_impl",
    ),
    _tp(
        UT,
        "wrap",
        "a pipeline reply's agent_turn: the turn it answers, a link to it",
        f"{ACTIVITY}._pipeline_reply_task_impl",
    ),
    _tp(
        UT,
        "wrap",
        "an STT turn ends, its user_turn still open (a parallel STT's gets the utterance)",
        f"{ACTIVITY}.on_end_of_turn",
    ),
    _tp(UT, "attr", "the STT turn's recognition", f"{ACTIVITY}._audio_recognition"),
    _tp(
        UT,
        "attr",
        "the open user_turn span (1.8+: also handed over in the end-of-turn info)",
        f"{RECOGNITION}:AudioRecognition._user_turn_span",
    ),
    _tp(
        UT,
        "attr",
        "the agent_turn span's context",
        "livekit.agents.voice.speech_handle:SpeechHandle._agent_turn_context",
    ),
    _tp(
        UT,
        "attr",
        "1.8+: the turn's user_turn span, handed to on_end_of_turn (else read off recognition)",
        f"{RECOGNITION}:_EndOfTurnInfo.user_turn_span",
        optional=True,
    ),
    _tp(
        UT,
        "attr",
        "Gemini: the generation's input item is the one it answers",
        f"{GEMINI}:RealtimeSession._current_generation",
        optional=True,
    ),
    _tp(
        UT,
        "attr",
        "Gemini: the open generation's response id (its input_id: transcript_identity's)",
        f"{GEMINI}:_ResponseGeneration.response_id",
        optional=True,
    ),
)


def for_feature(feature: str) -> tuple[Touchpoint, ...]:
    return tuple(tp for tp in TOUCHPOINTS if tp.feature == feature)


def resolve(path: str) -> object | None:
    """The object at ``path`` if its module is already imported (never imports), else None."""
    module_name, _, qualname = path.partition(":")
    obj: object | None = sys.modules.get(module_name)
    for part in qualname.split("."):
        if obj is None:
            return None
        obj = getattr(obj, part, None)
    return obj


def missing(feature: str, imported: Callable[[str], bool] | None = None) -> list[Touchpoint]:
    """The required touchpoints of ``feature`` that do not resolve in the imported modules.

    ``attr`` touchpoints (instance attributes) cannot be seen on a class; the sweep checks
    them in the source. With ``imported``, only touchpoints in a module it accepts are
    checked: one not imported yet, or still being imported, is judged when it completes.
    """
    result = []
    for tp in for_feature(feature):
        if tp.optional or tp.kind == "attr":
            continue
        if imported is not None and not any(imported(m) for m in tp.modules):
            continue
        if all(resolve(path) is None for path in tp.paths):
            result.append(tp)
    return result
