"""Service-tree plumbing: ordered start/stop, the API listener and the embedded servers.

Twisted's ``MultiService`` stops its children all at once; the gateway must stop them one after
the other (stop intake → wait for in-flight work → flush → close clients → close the pool), so
``OrderedServices`` stops its children sequentially in reverse order of addition.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from twisted.application import service
from twisted.internet import defer, endpoints, threads
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IListeningPort, IProtocolFactory
from twisted.logger import Logger


class OrderedServices(service.MultiService):
    """A MultiService that stops its children one by one, last added first."""

    log = Logger()

    def stopService(self) -> defer.Deferred[None]:  # noqa: N802
        service.Service.stopService(self)
        return defer.Deferred.fromCoroutine(self._stop_in_order())

    async def _stop_in_order(self) -> None:
        for child in reversed(list(self)):
            if not child.running:
                continue
            try:
                await defer.maybeDeferred(child.stopService)
            except Exception:  # noqa: BLE001 - keep stopping the rest
                self.log.failure("Error while stopping {name}", name=getattr(child, "name", child))


class ApiListener(service.Service):
    """Listens for HTTP once the database is ready; stops listening first at shutdown.

    :param ready: fires when the services the API needs are up (the database pool).
    :param on_listening: called with the listening port (tests and the CLI print it).
    """

    log = Logger()
    name = "api"

    def __init__(self, reactor: Any, endpoint: str, site: IProtocolFactory, ready: defer.Deferred[Any],
                 on_listening: Callable[[IListeningPort], None] | None = None,
                 drain_timeout: float = 10.0, adopt_fd: int | None = None) -> None:
        self.reactor = reactor
        self.endpoint = endpoint
        self.adopt_fd = adopt_fd  # serve an inherited listening socket (server.workers > 1)
        self.site = site
        self.ready = ready
        self.on_listening = on_listening
        self.drain_timeout = drain_timeout
        self.port: IListeningPort | None = None
        self.listening: defer.Deferred[IListeningPort] = defer.Deferred()

    def startService(self) -> None:  # noqa: N802
        super().startService()
        d = defer.Deferred.fromCoroutine(self._listen())
        d.addErrback(self._fatal)

    async def _listen(self) -> None:
        await self.ready
        if not self.running:
            return
        if self.adopt_fd is not None:
            import socket

            self.port = self.reactor.adoptStreamPort(self.adopt_fd, socket.AF_INET, self.site)
        else:
            ep = endpoints.serverFromString(self.reactor, self.endpoint)
            self.port = await ep.listen(self.site)
        address = cast(IPv4Address | IPv6Address, self.port.getHost())  # a TCP listener
        self.log.info("dhis2gw API listening on http://{host}:{port}/", host=address.host, port=address.port)
        if self.on_listening is not None:
            self.on_listening(self.port)
        self.listening.callback(self.port)

    def _fatal(self, failure: Any) -> None:
        self.log.failure("The API could not start listening", failure)
        if not self.listening.called:
            self.listening.errback(failure)
        stop_reactor(self.reactor, "API listener failed")

    def stopService(self) -> defer.Deferred[Any]:  # noqa: N802
        super().stopService()
        if self.port is None:
            return defer.succeed(None)
        port, self.port = self.port, None
        return defer.maybeDeferred(port.stopListening)


class EmbeddedServers(service.Service):
    """Owns the embedded PostgreSQL/Redis started (blocking) by the composition root.

    They are started before the reactor runs; at shutdown they are stopped last, in a thread
    so the reactor is not blocked while ``pg_ctl stop`` waits.
    """

    log = Logger()
    name = "embedded"

    def __init__(self, reactor: Any, servers: list[Any]) -> None:
        self.reactor = reactor
        self.servers = servers

    def stopService(self) -> defer.Deferred[Any]:  # noqa: N802
        super().stopService()

        def stop_all() -> None:
            for server in reversed(self.servers):
                server.stop()

        self.log.info("Stopping the embedded servers")
        return threads.deferToThread(stop_all)


def stop_reactor(reactor: Any, reason: str) -> None:
    """Stop the reactor after a fatal start-up error, with one clear log line."""
    Logger().critical("dhis2gw cannot start: {reason}", reason=reason)
    if getattr(reactor, "running", False):
        reactor.callLater(0, reactor.stop)
