"""Server frames a provider should never send, for tests that a session survives them.

``OPENAI_BAD_TEXT_FRAMES`` and ``GEMINI_BAD_FRAMES``: not JSON, not an object, no or a
non-string ``type``, known types with missing or wrongly typed fields, binary frames.
"""

from __future__ import annotations

import json

OPENAI_KNOWN_TYPES_BROKEN = [
    {"type": "response.output_audio.delta"},
    {"type": "response.output_audio.delta", "response_id": "r", "item_id": "i", "delta": 5},
    {"type": "response.output_audio.delta", "delta": None},
    {"type": "input_audio_buffer.speech_started"},
    {"type": "input_audio_buffer.speech_started", "item_id": 5, "audio_start_ms": "soon"},
    {"type": "input_audio_buffer.speech_stopped", "item_id": [], "audio_end_ms": {}},
    {"type": "conversation.item.input_audio_transcription.delta"},
    {"type": "conversation.item.input_audio_transcription.delta", "item_id": "x", "delta": 3},
    {"type": "conversation.item.input_audio_transcription.completed"},
    {
        "type": "conversation.item.input_audio_transcription.completed",
        "item_id": 5,
        "transcript": 7,
    },
    {"type": "conversation.item.input_audio_transcription.failed"},
    {"type": "conversation.item.added", "item": "not an item"},
    {"type": "conversation.item.added"},
    {"type": "conversation.item.deleted"},
    {"type": "response.created"},
    {"type": "response.created", "response": []},
    {"type": "response.output_item.added", "item": 5},
    {"type": "response.content_part.added"},
    {"type": "response.output_audio_transcript.delta"},
    {"type": "response.output_text.delta"},
    {"type": "response.output_text.done"},
    {"type": "response.output_audio.done"},
    {"type": "response.output_item.done"},
    {"type": "response.done"},
    {"type": "response.done", "response": None},
    {"type": "error"},
    {"type": "error", "error": "boom"},
    {"type": "session.created"},
    {"type": "session.updated", "session": 5},
]

OPENAI_KNOWN_TYPES_BROKEN_FRAMES = [json.dumps(e) for e in OPENAI_KNOWN_TYPES_BROKEN]
OPENAI_BAD_TEXT_FRAMES: list[str] = [
    "{not json",
    "[1, 2]",
    "null",
    '"a string"',
    "42",
    "",
    "true",
    '{"type": ["input_audio_buffer.speech_started"]}',
    '{"type": {"nested": true}}',
    "{}",
    '{"event_id": "x"}',
    '{"type": null}',
    '{"type": 7}',
    '{"type": ""}',
    *OPENAI_KNOWN_TYPES_BROKEN_FRAMES,
]
OPENAI_BAD_BINARY_FRAMES: list[bytes] = [b"\x00\xff\x10", b'{"type": "response.done"}']

GEMINI_BAD_FRAMES: list[str | bytes] = [
    "{not json",
    "[1, 2]",
    "null",
    '"a string"',
    "42",
    "true",
    '{"unknownField": 1}',
    '{"serverContent": 5}',
    '{"serverContent": {"inputTranscription": {"text": 5}}}',
    '{"serverContent": {"turnComplete": "yes"}}',
    '{"serverContent": {"modelTurn": {"parts": 7}}}',
    '{"toolCall": {"functionCalls": [{"name": 5}]}}',
    '{"voiceActivity": {"type": ["ACTIVITY_START"]}}',
    '{"voiceActivity": {"type": "ACTIVITY_START", "audioOffset": 12}}',
    '{"goAway": {"timeLeft": []}}',
    '{"usageMetadata": {"promptTokenCount": "many"}}',
    b"\x00\xff\x10",
    b'{"serverContent": {"interrupted": 3}}',
]

GEMINI_ACCEPTED_BY_GENAI = {
    '{"serverContent": {"turnComplete": "yes"}}',  # pydantic's lax mode reads "yes" as True
}
