"""The websocket loopback server both provider fakes are built on.

One aiohttp server on 127.0.0.1 (a free port), any path upgraded to a websocket; every JSON
frame the client sends is recorded; scripted frames go to the newest connection.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TypeVar

from aiohttp import WSMsgType, web

logger = logging.getLogger("livekit_ext.testing")

ClientEventPredicate = Callable[[dict[str, Any]], bool]
_Server = TypeVar("_Server", bound="LoopbackServer")


@dataclass
class Connection:
    """One client websocket: where it connected and what it sent."""

    path: str
    query: dict[str, str]
    headers: dict[str, str]
    ws: web.WebSocketResponse
    client_events: list[dict[str, Any]] = field(default_factory=list)


class LoopbackServer:
    """Base class: subclasses answer the handshake (``on_connect``) and client events."""

    def __init__(self, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self._server_ssl = ssl_context
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.connections: list[Connection] = []
        self.client_events: list[dict[str, Any]] = []
        """Every JSON event any client sent, in arrival order."""
        self.raw_client_frames: list[str] = []
        self._changed = asyncio.Condition()

    # -- lifecycle -----------------------------------------------------------------------

    async def __aenter__(self: _Server) -> _Server:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        app = web.Application()
        self.add_routes(app)
        app.router.add_route("GET", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self._server_ssl)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def stop(self) -> None:
        for conn in self.connections:
            if not conn.ws.closed:
                await conn.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- what subclasses implement -------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        """HTTP routes a provider needs besides the websocket (matched before it)."""

    async def on_connect(self, conn: Connection) -> None:
        """Called once a client connected, before its first event is read."""

    async def on_client_event(self, conn: Connection, event: dict[str, Any]) -> None:
        """Called for every JSON event a client sends."""

    # -- talking to the client -----------------------------------------------------------

    @property
    def connection(self) -> Connection:
        if not self.connections:
            raise RuntimeError("no client has connected yet")
        return self.connections[-1]

    async def send_json(self, payload: Any, *, conn: Connection | None = None) -> None:
        await self.send_raw(json.dumps(payload), conn=conn)

    async def send_raw(self, frame: str, *, conn: Connection | None = None) -> None:
        """Send one text frame exactly as given (also for deliberately malformed input)."""
        target = conn or self.connection
        await target.ws.send_str(frame)

    async def send_bytes(self, frame: bytes, *, conn: Connection | None = None) -> None:
        """Send one binary frame exactly as given."""
        target = conn or self.connection
        await target.ws.send_bytes(frame)

    async def drop(self) -> None:
        """Close the newest connection from the server side, as a provider outage would."""
        await self.connection.ws.close()

    async def wait_for_connection(self, count: int = 1, timeout: float = 10.0) -> Connection:
        await self._wait(lambda: len(self.connections) >= count, timeout, f"{count} connection(s)")
        return self.connections[count - 1]

    async def wait_for_client_event(
        self,
        match: str | ClientEventPredicate,
        *,
        count: int = 1,
        timeout: float = 10.0,
    ) -> dict[str, Any]:
        """Wait until ``count`` client events match (a ``type`` or a predicate); the last one."""
        predicate = (lambda e: e.get("type") == match) if isinstance(match, str) else match
        found: list[dict[str, Any]] = []

        def ready() -> bool:
            found[:] = [e for e in self.client_events if predicate(e)]
            return len(found) >= count

        await self._wait(ready, timeout, f"{count} client event(s) matching {match!r}")
        return found[count - 1]

    async def wait_until(self, ready: Callable[[], bool], *, timeout: float = 10.0) -> None:
        """Wait until ``ready()`` holds; re-checked whenever a client connects or sends."""
        await self._wait(ready, timeout, getattr(ready, "__name__", "condition"))

    def client_events_of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.client_events if e.get("type") == kind]

    async def _wait(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(ready), timeout)
            except asyncio.TimeoutError:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}") from None

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # -- the websocket handler -----------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        conn = Connection(
            path=request.path,
            query=dict(request.query),
            headers=dict(request.headers),
            ws=ws,
        )
        self.connections.append(conn)
        await self.on_connect(conn)
        await self._notify()
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                self.raw_client_frames.append(msg.data)
                await self._received(conn, msg.data)
            elif msg.type == WSMsgType.BINARY:
                await self._received(conn, msg.data.decode("utf-8", "replace"))
            elif msg.type == WSMsgType.ERROR:
                logger.debug("loopback websocket error: %r", ws.exception())
        await self._notify()
        return ws

    async def _received(self, conn: Connection, data: str) -> None:
        try:
            event = json.loads(data)
        except ValueError:
            logger.warning("loopback server: client sent a non-JSON frame: %.80r", data)
            return
        if not isinstance(event, dict):
            return
        conn.client_events.append(event)
        self.client_events.append(event)
        await self.on_client_event(conn, event)
        await self._notify()
