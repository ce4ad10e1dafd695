"""A loopback server that speaks the Gemini Live ``BidiGenerateContent`` websocket protocol.

google-genai always dials ``wss://``, so this server listens with TLS on 127.0.0.1 using a
per-process self-signed certificate (``_tls``); the client side trusts exactly that one.
Server messages are scripted in their wire form (camelCase JSON) and validated the way
google-genai itself parses incoming frames, so a message a test sends is one the real SDK
understands the same way.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import ssl
from collections import Counter
from typing import Any

from .._extras import require
from ._loopback import Connection, LoopbackServer
from ._tls import loopback_tls


class GeminiWireError(ValueError):
    """A scripted server message that google-genai would reject or silently mangle."""


def _leaves(value: Any) -> Counter[str]:
    """Every scalar in a JSON value, as a multiset (key names ignored: converters rename)."""
    found: Counter[str] = Counter()
    if isinstance(value, dict):
        for item in value.values():
            found += _leaves(item)
    elif isinstance(value, list):
        for item in value:
            found += _leaves(item)
    else:
        found[json.dumps(value, sort_keys=True)] += 1
    return found


def validate_server_message(message: dict[str, Any]) -> Any:
    """Parse ``message`` as google-genai's ``AsyncSession._receive`` does; return the result.

    The SDK first maps the wire JSON through ``_LiveServerMessage_from_mldev`` (which renames
    some nested keys, e.g. ``voiceActivity.type``, and silently drops the ones it does not
    know), treats a non-empty frame that maps to nothing as an error, then strips unknown
    fields and validates a ``LiveServerMessage``. Here the same converter runs, but anything
    it or the field stripping would drop is an error instead: a misspelt key in a test would
    otherwise reach the plugin as an empty message and the test would prove nothing.
    """
    from google.genai import types

    try:
        from google.genai import _live_converters as converters

        convert = converters._LiveServerMessage_from_mldev
    except (ImportError, AttributeError):  # a genai without the converter parses directly
        parsed = copy.deepcopy(message)
    else:
        parsed = convert(copy.deepcopy(message))
        if message and not parsed:
            raise GeminiWireError(
                f"google-genai maps no field of {message!r} and would raise it as an API error"
            )
    lost = _leaves(message) - _leaves(parsed)
    if lost:
        raise GeminiWireError(
            f"google-genai's parser would drop the value(s) {sorted(lost)} of {message!r}"
        )
    # no _remove_extra_fields: the models forbid extra keys, so unknown nested keys fail here
    return types.LiveServerMessage.model_validate(parsed)


class GeminiLiveServer(LoopbackServer):
    """Gemini Live over a loopback TLS websocket. ``send(*messages)`` scripts the server side.

    Point the real plugin at it with ``server.realtime_model(**kwargs)``, which is
    ``google.realtime.RealtimeModel(api_key="test", http_options=server.http_options,
    **kwargs)``. Every supported release (livekit-plugins-google 1.4.6 to 1.8.9) accepts
    ``http_options`` on ``RealtimeModel`` and hands it, unchanged apart from an added
    ``x-goog-api-client`` header (and ``api_version`` if one is set), to ``genai.Client`` when
    each session is created, so the route is the same on all of them. ``async_client_args``
    must go there, to the client: google-genai's ``live.connect`` rejects it on a per-session
    ``LiveConnectConfig.http_options``. The plugin mutates the options it is given, hence a
    fresh ``HttpOptions`` per ``http_options`` access.

    Each connection is answered with ``{"setupComplete": {}}`` once the client's ``setup``
    message arrives, and ``send()`` waits for that, so no scripted message can overtake it.
    """

    def __init__(self, *, session_id: str | None = None) -> None:
        require("GeminiLiveServer", "google", "google.genai", "livekit.plugins.google")
        require("GeminiLiveServer", "google", "cryptography")
        server_ssl, client_ssl = loopback_tls()
        super().__init__(ssl_context=server_ssl)
        self.client_ssl_context: ssl.SSLContext = client_ssl
        """Trusts this server's certificate and nothing else."""
        self.session_id = session_id
        self._setup_done: dict[int, asyncio.Event] = {}
        self.setups_completed = 0
        """How many connections have been sent their ``setupComplete``."""

    async def __aenter__(self) -> GeminiLiveServer:
        await self.start()
        return self

    # -- pointing the plugin here --------------------------------------------------------

    @property
    def base_url(self) -> str:
        """google-genai swaps the scheme for ``wss`` and appends ``/ws/...BidiGenerateContent``."""
        return f"https://127.0.0.1:{self.port}"

    @property
    def http_options(self) -> Any:
        """A fresh ``google.genai.types.HttpOptions`` for this server (the plugin mutates it)."""
        from google.genai import types

        return types.HttpOptions(
            base_url=self.base_url, async_client_args={"ssl": self.client_ssl_context}
        )

    def realtime_model(self, **kwargs: Any) -> Any:
        """The installed plugin's ``RealtimeModel``, connected here (kwargs pass through)."""
        from livekit.plugins import google

        kwargs.setdefault("api_key", "test")
        return google.realtime.RealtimeModel(http_options=self.http_options, **kwargs)

    # -- what the client sent ------------------------------------------------------------

    def client_messages_of(self, kind: str) -> list[Any]:
        """The bodies of every client message with top-level key ``kind`` (``realtimeInput``...)."""
        return [e[kind] for e in self.client_events if kind in e]

    def setups(self) -> list[dict[str, Any]]:
        """The ``setup`` body of every connection, in order."""
        return list(self.client_messages_of("setup"))

    async def wait_for_setup(self, count: int = 1, timeout: float = 10.0) -> Connection:
        """Wait until ``count`` connections have completed their setup handshake."""
        await self._wait(
            lambda: self.setups_completed >= count, timeout, f"{count} completed setup(s)"
        )
        return self.connections[count - 1]

    # -- talking to the client -----------------------------------------------------------

    async def send(
        self,
        *messages: dict[str, Any],
        validate: bool = True,
        conn: Connection | None = None,
        timeout: float = 10.0,
    ) -> None:
        """Send server messages (wire JSON) to the newest connection once its setup is done.

        Each is checked with :func:`validate_server_message` unless ``validate=False`` (for
        deliberately malformed input).
        """
        target = conn or self.connection
        if validate:
            for message in messages:
                validate_server_message(message)
        try:
            await asyncio.wait_for(self._setup_event(target).wait(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"the client sent no setup within {timeout}s") from None
        for message in messages:
            await self.send_json(message, conn=target)

    def _setup_event(self, conn: Connection) -> asyncio.Event:
        return self._setup_done.setdefault(id(conn), asyncio.Event())

    async def on_client_event(self, conn: Connection, event: dict[str, Any]) -> None:
        done = self._setup_event(conn)
        if "setup" in event and not done.is_set():
            reply: dict[str, Any] = {"setupComplete": {}}
            if self.session_id is not None:
                reply["setupComplete"]["sessionId"] = self.session_id
            await self.send_json(reply, conn=conn)
            done.set()
            self.setups_completed += 1


# -- builders for the server messages tests script most ---------------------------------


def input_transcription(text: str) -> dict[str, Any]:
    return {"serverContent": {"inputTranscription": {"text": text}}}


def interim_input_transcription(text: str, start_offset: str | None = None) -> dict[str, Any]:
    """Low-latency text while the user speaks (the plugin ignores it unless opted in)."""
    body: dict[str, Any] = {"text": text}
    if start_offset is not None:
        body["startOffset"] = start_offset
    return {"serverContent": {"interimInputTranscription": body}}


def output_transcription(text: str) -> dict[str, Any]:
    return {"serverContent": {"outputTranscription": {"text": text}}}


def model_audio(pcm: bytes, sample_rate: int = 24000) -> dict[str, Any]:
    """One model-turn chunk of 16-bit mono PCM (the plugin plays it at 24 kHz)."""
    return {
        "serverContent": {
            "modelTurn": {
                "parts": [
                    {
                        "inlineData": {
                            "mimeType": f"audio/pcm;rate={sample_rate}",
                            "data": base64.b64encode(pcm).decode("ascii"),
                        }
                    }
                ]
            }
        }
    }


def model_text(text: str) -> dict[str, Any]:
    return {"serverContent": {"modelTurn": {"parts": [{"text": text}]}}}


def turn_complete() -> dict[str, Any]:
    return {"serverContent": {"turnComplete": True}}


def generation_complete() -> dict[str, Any]:
    return {"serverContent": {"generationComplete": True}}


def interrupted() -> dict[str, Any]:
    return {"serverContent": {"interrupted": True}}


def voice_activity_start(audio_offset: str | None = None) -> dict[str, Any]:
    """The wire key is ``type`` (google-genai maps it to ``voice_activity_type``)."""
    activity: dict[str, Any] = {"type": "ACTIVITY_START"}
    if audio_offset is not None:
        activity["audioOffset"] = audio_offset
    return {"voiceActivity": activity}


def voice_activity_end(audio_offset: str | None = None) -> dict[str, Any]:
    activity: dict[str, Any] = {"type": "ACTIVITY_END"}
    if audio_offset is not None:
        activity["audioOffset"] = audio_offset
    return {"voiceActivity": activity}


def tool_call(name: str, args: dict[str, Any], id: str) -> dict[str, Any]:
    return {"toolCall": {"functionCalls": [{"id": id, "name": name, "args": args}]}}


def tool_call_cancellation(*ids: str) -> dict[str, Any]:
    return {"toolCallCancellation": {"ids": list(ids)}}


def go_away(time_left: str = "1s") -> dict[str, Any]:
    return {"goAway": {"timeLeft": time_left}}


def session_resumption_update(new_handle: str, resumable: bool = True) -> dict[str, Any]:
    return {"sessionResumptionUpdate": {"newHandle": new_handle, "resumable": resumable}}
