"""A tiny real HTTP server on 127.0.0.1 whose answers a test scripts per route.

It exists to drive the client's transport edge cases (hangs, drops, redirects,
huge or slow bodies) that the DHIS2 simulator is not the place for.  It records
every request it receives so tests assert on what really went over the wire.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred
from twisted.web.http import HTTPChannel
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

Handler = Callable[[Request], Any]


@dataclass
class Received:
    """One request as the server saw it."""

    method: str
    path: str
    args: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    client_port: int

    def json(self) -> Any:
        """The request body parsed as JSON."""
        return json.loads(self.body)


class _ScriptedResource(Resource):
    isLeaf = True  # noqa: N815 - twisted.web's name

    def __init__(self, server: ScriptedServer) -> None:
        super().__init__()
        self._server = server

    def render(self, request: Request) -> Any:
        path = request.path.decode()
        received = Received(
            method=request.method.decode(),
            path=path,
            args={k.decode(): [v.decode() for v in vs] for k, vs in request.args.items()},
            headers={k.decode().lower(): vs[-1].decode() for k, vs in request.requestHeaders.getAllRawHeaders()},
            body=request.content.read(),
            client_port=request.transport.getPeer().port,
        )
        self._server.received.append(received)
        waiters, self._server._waiters = self._server._waiters, []
        for waiter in waiters:
            waiter.callback(received)
        handler = self._server.routes.get((received.method, path))
        if handler is None:
            request.setResponseCode(404)
            return b'{"httpStatus":"Not Found","httpStatusCode":404,"status":"ERROR","message":"no route"}'
        return handler(request)


class _TrackingSite(Site):
    """A Site that remembers its connections so a test can close and await them."""

    def __init__(self, resource: Resource) -> None:
        super().__init__(resource)
        self.timeOut = None  # no idle-timeout DelayedCall left behind in the reactor
        self.channels: list[tuple[HTTPChannel, Deferred[None]]] = []

    def buildProtocol(self, addr: Any) -> Any:  # noqa: N802 - Twisted's factory method
        channel = super().buildProtocol(addr)
        lost: Deferred[None] = Deferred()
        original = channel.connectionLost

        def connection_lost(reason: Any) -> None:
            original(reason)
            lost.callback(None)

        channel.connectionLost = connection_lost
        self.channels.append((channel, lost))
        return channel


class ScriptedServer:
    """Start with `start`, script with `route`, stop with `stop` (closes every connection)."""

    def __init__(self, reactor: Any) -> None:
        self._reactor = reactor
        self.routes: dict[tuple[str, str], Handler] = {}
        self.received: list[Received] = []
        self._waiters: list[Deferred[Received]] = []
        self.hanging: list[Request] = []
        self._site = _TrackingSite(_ScriptedResource(self))
        self._port: Any = None

    def start(self) -> str:
        """Listen on 127.0.0.1, port 0; return the base URL (DHIS2 context root, no /api)."""
        self._port = self._reactor.listenTCP(0, self._site, interface="127.0.0.1")
        return f"http://127.0.0.1:{self._port.getHost().port}"

    def route(self, method: str, path: str, handler: Handler) -> None:
        """Answer ``method path`` with ``handler(request)`` (a twisted.web render result)."""
        self.routes[(method, path)] = handler

    def next_request(self) -> Deferred[Received]:
        """Fires with the next request the server receives (before it is answered)."""
        waiter: Deferred[Received] = Deferred()
        self._waiters.append(waiter)
        return waiter

    async def stop(self) -> None:
        """Stop listening, drop every connection, and wait until they are gone."""
        if self._port is not None:
            await self._port.stopListening()
        for channel, lost in self._site.channels:
            if not lost.called:
                getattr(channel, "_channel", channel).transport.abortConnection()
                await lost

    # -------------------------------------------------------------- canned handlers

    @staticmethod
    def respond(status: int, body: bytes, headers: dict[str, str] | None = None) -> Handler:
        """A complete answer with Content-Length."""
        def handler(request: Request) -> bytes:
            request.setResponseCode(status)
            for name, value in (headers or {"Content-Type": "application/json"}).items():
                request.setHeader(name, value)
            return body
        return handler

    @staticmethod
    def chunked(status: int, chunks: list[bytes]) -> Handler:
        """An answer without Content-Length (chunked transfer encoding)."""
        def handler(request: Request) -> Any:
            request.setResponseCode(status)
            request.setHeader("Content-Type", "application/json")
            for chunk in chunks:
                request.write(chunk)
            request.finish()
            return NOT_DONE_YET
        return handler

    def hang(self) -> Handler:
        """Never answer (the request stays open until the client gives up)."""
        def handler(request: Request) -> Any:
            self.hanging.append(request)
            return NOT_DONE_YET
        return handler

    def slow_body(self, status: int, first_part: bytes, announced_length: int) -> Handler:
        """Send the headers and the first part of the body, then stall."""
        def handler(request: Request) -> Any:
            request.setResponseCode(status)
            request.setHeader("Content-Type", "application/json")
            request.setHeader("Content-Length", str(announced_length))
            request.write(first_part)
            self.hanging.append(request)
            return NOT_DONE_YET
        return handler

    @staticmethod
    def drop() -> Handler:
        """Read the whole request, then drop the connection without answering ("commit then drop")."""
        def handler(request: Request) -> Any:
            request.transport.abortConnection()
            return NOT_DONE_YET
        return handler
