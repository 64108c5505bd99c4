"""Serving a :class:`~dhis2gw.sim.app.Simulator` on a real TCP port, with outages."""
from __future__ import annotations

from typing import Any, cast

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IListeningPort, IReactorTCP, IReactorTime
from twisted.logger import Logger
from twisted.protocols.policies import WrappingFactory
from twisted.web.server import Site

from dhis2gw.sim.app import Simulator


class SimulatorServer:
    """Listens for one simulator; can go away (connection refused) and come back on the same port."""

    log = Logger()

    def __init__(self, sim: Simulator, reactor: IReactorTCP, clock: IReactorTime | None = None,
                 host: str = "127.0.0.1", access_log: bool = False) -> None:
        """Listen with *reactor*; outage timing uses *clock* (default: the simulator's clock)."""
        self.sim = sim
        self.reactor = reactor
        self.clock = clock or sim.clock
        self.host = host
        site = Site(sim.app.resource())
        if not access_log:
            site.log = lambda request: None  # type: ignore[method-assign]
        site.noisy = False  # no "Starting factory" / "Stopping factory" lines
        self.factory = WrappingFactory(site)
        self.factory.noisy = False
        self.port: int | None = None
        self._listening: IListeningPort | None = None
        self._outage_call: Any = None
        self._outage_waiters: list[Deferred[None]] = []
        sim.server = self

    @property
    def listening(self) -> bool:
        """True while accepting connections."""
        return self._listening is not None

    @property
    def base_url(self) -> str:
        """``http://host:port`` (no ``/api``)."""
        return f"http://{self.host}:{self.port}"

    async def start(self, port: int = 0) -> int:
        """Start listening (port 0 picks a free one); returns the port."""
        # WrappingFactory derives from ClientFactory in Twisted's types, yet wraps server factories.
        self._listening = self.reactor.listenTCP(port, self.factory, interface=self.host)  # type: ignore[arg-type]
        self.port = cast(IPv4Address, self._listening.getHost()).port
        return self.port

    def _drop_connections(self) -> None:
        for proto in list(self.factory.protocols):
            transport = getattr(proto, "transport", None)
            if transport is not None:
                transport.abortConnection()

    async def stop(self) -> None:
        """Stop listening and drop open connections (also cancels a pending come-back)."""
        if self._outage_call is not None and self._outage_call.active():
            self._outage_call.cancel()
        self._outage_call = None
        self.sim.jobs.cancel_pending()
        if self._listening is not None:
            listening, self._listening = self._listening, None
            stopped = listening.stopListening()
            if stopped is not None:
                await stopped
        self._drop_connections()
        for d in self._outage_waiters:
            d.callback(None)
        self._outage_waiters = []

    def outage(self, seconds: float) -> Deferred[None]:
        """Refuse connections for *seconds* (on the clock), then listen again on the same port.

        Open keep-alive connections are aborted too, so pooled clients see the outage.
        The returned Deferred fires once the server is back.
        """
        d: Deferred[None] = Deferred()
        self._outage_waiters.append(d)
        if self._listening is not None:
            listening, self._listening = self._listening, None
            listening.stopListening()
            self._drop_connections()
        if self._outage_call is not None and self._outage_call.active():
            self._outage_call.cancel()
        self._outage_call = self.clock.callLater(seconds, self._come_back)
        self.log.info("simulator outage for {seconds}s on port {port}", seconds=seconds, port=self.port)
        return d

    def _come_back(self) -> None:
        self._outage_call = None
        if self._listening is None and self.port is not None:
            self._listening = self.reactor.listenTCP(self.port, self.factory,  # type: ignore[arg-type]
                                                     interface=self.host)
        waiters, self._outage_waiters = self._outage_waiters, []
        for d in waiters:
            d.callback(None)
