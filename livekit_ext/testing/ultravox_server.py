"""A loopback server that speaks Ultravox's call protocol: ``POST /calls`` answers with a
``joinUrl`` on this server, whose websocket then carries the call's JSON messages.

Server messages are scripted in their wire form and validated against livekit-plugins-
ultravox's own event models (the plugin has no SDK of its own to parse them).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ._loopback import LoopbackServer


class UltravoxServer(LoopbackServer):
    """``POST /calls`` creates a call (its body is kept in ``calls``); ``/join`` is its socket."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[dict[str, Any]] = []

    def add_routes(self, app: web.Application) -> None:
        app.router.add_route("POST", "/calls", self._create_call)

    async def _create_call(self, request: web.Request) -> web.Response:
        self.calls.append(await request.json())
        return web.json_response({"callId": f"call_{len(self.calls)}", "joinUrl": self.join_url})

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def join_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/join"

    def realtime_model(self, **kwargs: Any) -> Any:
        """The installed plugin's ``RealtimeModel``, calling this server (kwargs pass through)."""
        from livekit.plugins import ultravox  # type: ignore[attr-defined,unused-ignore]

        kwargs.setdefault("api_key", "test")
        return ultravox.realtime.RealtimeModel(base_url=self.base_url, **kwargs)

    async def send(self, *messages: dict[str, Any], validate: bool = True) -> None:
        """Send server messages to the newest call, each checked against the plugin's models."""
        if validate:
            from livekit.plugins.ultravox.realtime.events import parse_ultravox_event

            for message in messages:
                parse_ultravox_event(message)
        for message in messages:
            await self.send_json(message)


def user_transcript(ordinal: int, text: str, *, final: bool) -> dict[str, Any]:
    return {
        "type": "transcript",
        "role": "user",
        "medium": "voice",
        "text": text,
        "final": final,
        "ordinal": ordinal,
    }


def state(value: str) -> dict[str, Any]:
    """``listening`` / ``thinking`` / ``speaking``."""
    return {"type": "state", "state": value}
