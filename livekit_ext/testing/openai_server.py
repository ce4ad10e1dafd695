"""A loopback server that speaks the OpenAI Realtime (GA) websocket protocol.

Point the real plugin at it with ``openai.realtime.RealtimeModel(base_url=server.base_url,
api_key="test")`` (or ``RealtimeModel.with_azure(azure_endpoint=server.azure_endpoint, ...)``
for the Azure paths ``/openai/realtime`` and ``/openai/v1/realtime``). It answers the
handshake (``session.created``, ``session.updated``), records every client event and sends
the server events a test scripts, each validated against the openai SDK's own types.
"""

from __future__ import annotations

import functools
import itertools
from typing import Any

from .._extras import require
from ._loopback import Connection, LoopbackServer

_ids = itertools.count(1)


def _event_id() -> str:
    return f"event_{next(_ids):06d}"


@functools.cache
def _server_event_adapter() -> Any:
    """Building the adapter for the SDK's event union takes ~100 ms: once per process."""
    from openai.types.realtime import RealtimeServerEvent
    from pydantic import TypeAdapter

    return TypeAdapter(RealtimeServerEvent)


def validate_server_event(event: dict[str, Any]) -> None:
    """Raise ``pydantic.ValidationError`` unless ``event`` is a valid OpenAI realtime event."""
    _server_event_adapter().validate_python(event)


class OpenAIRealtimeServer(LoopbackServer):
    """OpenAI Realtime over a loopback websocket. ``send(*events)`` scripts the server side."""

    def __init__(
        self,
        *,
        model: str = "gpt-realtime",
        auto_session_updated: bool = True,
        auto_item_added: bool = True,
    ) -> None:
        # the openai SDK validates every scripted event; livekit-plugins-openai brings it
        require("OpenAIRealtimeServer", "openai", "openai")
        super().__init__()
        self.model = model
        self.auto_session_updated = auto_session_updated
        self.auto_item_added = auto_item_added

    @property
    def base_url(self) -> str:
        """For ``RealtimeModel(base_url=...)``: the plugin appends ``/realtime``."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def azure_endpoint(self) -> str:
        """For ``RealtimeModel.with_azure(azure_endpoint=...)``."""
        return f"http://127.0.0.1:{self.port}"

    def session_updates(self) -> list[dict[str, Any]]:
        """The ``session`` bodies of every ``session.update`` the client sent, in order."""
        return [e.get("session", {}) for e in self.client_events_of("session.update")]

    async def send(self, *events: dict[str, Any], validate: bool = True) -> None:
        """Send server events to the newest connection, validating each unless told not to."""
        for event in events:
            payload = {"event_id": _event_id(), **event}
            if validate:
                validate_server_event(payload)
            await self.send_json(payload)

    async def on_connect(self, conn: Connection) -> None:
        await self.send_json(
            {
                "type": "session.created",
                "event_id": _event_id(),
                "session": {
                    "type": "realtime",
                    "id": f"sess_{len(self.connections)}",
                    "object": "realtime.session",
                    "model": self.model,
                },
            },
            conn=conn,
        )

    async def on_client_event(self, conn: Connection, event: dict[str, Any]) -> None:
        if event.get("type") == "conversation.item.create" and self.auto_item_added:
            # the service acknowledges every item a client creates; the plugin waits for it
            # (up to 5 s) before it asks for the response that follows a tool call
            item = {"object": "realtime.item", "status": "completed", **(event.get("item") or {})}
            item.setdefault("id", f"item_client_{len(conn.client_events)}")
            await self.send_json(
                {
                    "type": "conversation.item.added",
                    "event_id": _event_id(),
                    "previous_item_id": event.get("previous_item_id"),
                    "item": item,
                },
                conn=conn,
            )
        if event.get("type") == "session.update" and self.auto_session_updated:
            session = event.get("session") or {}
            await self.send_json(
                {
                    "type": "session.updated",
                    "event_id": _event_id(),
                    "session": {"type": "realtime", "model": self.model, **session},
                },
                conn=conn,
            )


# -- builders for the server events tests script most -----------------------------------


def speech_started(item_id: str, audio_start_ms: int = 0) -> dict[str, Any]:
    return {
        "type": "input_audio_buffer.speech_started",
        "item_id": item_id,
        "audio_start_ms": audio_start_ms,
    }


def speech_stopped(item_id: str, audio_end_ms: int = 0) -> dict[str, Any]:
    return {
        "type": "input_audio_buffer.speech_stopped",
        "item_id": item_id,
        "audio_end_ms": audio_end_ms,
    }


def committed(item_id: str, previous_item_id: str | None = None) -> dict[str, Any]:
    return {
        "type": "input_audio_buffer.committed",
        "item_id": item_id,
        "previous_item_id": previous_item_id,
    }


def user_item_added(item_id: str, previous_item_id: str | None = None) -> dict[str, Any]:
    return {
        "type": "conversation.item.added",
        "previous_item_id": previous_item_id,
        "item": {
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "role": "user",
            "status": "completed",
            "content": [{"type": "input_audio", "transcript": None}],
        },
    }


def transcription_delta(item_id: str, delta: str, content_index: int = 0) -> dict[str, Any]:
    return {
        "type": "conversation.item.input_audio_transcription.delta",
        "item_id": item_id,
        "content_index": content_index,
        "delta": delta,
    }


def transcription_completed(
    item_id: str, transcript: str, content_index: int = 0
) -> dict[str, Any]:
    return {
        "type": "conversation.item.input_audio_transcription.completed",
        "item_id": item_id,
        "content_index": content_index,
        "transcript": transcript,
        "usage": {"type": "duration", "seconds": 1.0},
    }


def transcription_failed(item_id: str, message: str = "transcription failed") -> dict[str, Any]:
    return {
        "type": "conversation.item.input_audio_transcription.failed",
        "item_id": item_id,
        "content_index": 0,
        "error": {"type": "server_error", "code": "transcription_failed", "message": message},
    }


def _response(
    response_id: str,
    status: str,
    output: list[dict[str, Any]],
    metadata: dict[str, str] | None = None,
) -> dict[str, Any]:
    response: dict[str, Any] = {
        "id": response_id,
        "object": "realtime.response",
        "status": status,
        "output": output,
    }
    if metadata is not None:
        response["metadata"] = metadata
    return response


def function_call(
    response_id: str, item_id: str, call_id: str, name: str, arguments: str = "{}"
) -> list[dict[str, Any]]:
    """A whole server-initiated response that calls one function tool."""
    item = {
        "id": item_id,
        "object": "realtime.item",
        "type": "function_call",
        "status": "in_progress",
        "call_id": call_id,
        "name": name,
        "arguments": "",
    }
    done = {**item, "status": "completed", "arguments": arguments}
    return [
        {"type": "response.created", "response": _response(response_id, "in_progress", [])},
        {
            "type": "response.output_item.added",
            "response_id": response_id,
            "output_index": 0,
            "item": item,
        },
        {
            "type": "response.function_call_arguments.done",
            "response_id": response_id,
            "item_id": item_id,
            "output_index": 0,
            "call_id": call_id,
            "name": name,
            "arguments": arguments,
        },
        {
            "type": "response.output_item.done",
            "response_id": response_id,
            "output_index": 0,
            "item": done,
        },
        {"type": "response.done", "response": _response(response_id, "completed", [done])},
    ]


def assistant_reply(
    response_id: str, item_id: str, text: str, *, metadata: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """A whole response with one assistant message: audio and its transcript.

    ``metadata`` echoes a client ``response.create``'s (the plugin matches its
    ``generate_reply`` to the response by ``metadata.client_event_id``).
    """
    msg = {
        "id": item_id,
        "object": "realtime.item",
        "type": "message",
        "role": "assistant",
        "status": "in_progress",
        "content": [],
    }
    done = {**msg, "status": "completed", "content": [{"type": "output_audio", "transcript": text}]}
    part = {"response_id": response_id, "item_id": item_id, "output_index": 0, "content_index": 0}
    return [
        {
            "type": "response.created",
            "response": _response(response_id, "in_progress", [], metadata),
        },
        {
            "type": "response.output_item.added",
            "response_id": response_id,
            "output_index": 0,
            "item": msg,
        },
        {"type": "conversation.item.added", "previous_item_id": None, "item": msg},
        {
            "type": "response.content_part.added",
            **part,
            "part": {"type": "audio", "transcript": ""},
        },
        {"type": "response.output_audio_transcript.delta", **part, "delta": text},
        {"type": "response.output_audio.delta", **part, "delta": "AAAAAAAAAAAAAAAA"},
        {"type": "response.output_audio.done", **part},
        {"type": "response.output_audio_transcript.done", **part, "transcript": text},
        {
            "type": "response.output_item.done",
            "response_id": response_id,
            "output_index": 0,
            "item": done,
        },
        {"type": "response.done", "response": _response(response_id, "completed", [done])},
    ]
