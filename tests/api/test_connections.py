"""Issue 16, F7: slow clients cannot hold the API's connections (deadlines, body rate, per-address cap)."""
from __future__ import annotations

import time
from typing import Any

import treq
from twisted.internet import defer, protocol, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.task import LoopingCall, deferLater
from twisted.trial.unittest import TestCase

from dhis2gw.api import channel
from dhis2gw.api.routing import Call, Router, route
from dhis2gw.api.site import GatewaySite


class _Health:
    @route("GET", "/health", public=True)
    async def health(self, call: Call) -> dict[str, Any]:
        return {"status": "ok"}

    @route("POST", "/echo", public=True, raw_body=True)
    async def echo(self, call: Call) -> dict[str, Any]:
        return {"ok": True}


class Slow(protocol.Protocol):
    """A client that sends ``opening`` and then one more byte each time ``trickle`` is called."""

    def __init__(self, opening: bytes) -> None:
        self.opening = opening
        self.closed: defer.Deferred[float] = defer.Deferred()
        self.received = b""

    def connectionMade(self) -> None:  # noqa: N802
        self.transport.write(self.opening)

    def trickle(self) -> None:
        if not self.closed.called:
            self.transport.write(b"X")

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        self.received += data

    def connectionLost(self, reason: Any) -> None:  # noqa: N802
        self.closed.callback(time.monotonic())


class ConnectionHygieneTests(TestCase):
    """A GatewaySite on 127.0.0.1 with short deadlines; slow clients from other loopback addresses."""

    header_timeout = 2.0

    def setUp(self) -> None:
        router = Router(None)
        router.mount("", _Health())
        self.site = GatewaySite(router.resource(), max_body_bytes=1 << 20, header_timeout=self.header_timeout,
                                body_timeout=4.0, min_body_rate=1024, max_connections_per_address=64)
        self.port = reactor.listenTCP(0, self.site, interface="0.0.0.0", backlog=4096)
        self.addCleanup(self.port.stopListening)
        self.portnum = self.port.getHost().port

    async def open(self, n: int, opening: bytes, source_hosts: int = 40) -> list[Slow]:
        clients = []
        for i in range(n):
            source = f"127.0.1.{i % source_hosts + 1}"  # ≤ 50 connections per address: under the cap of 64
            client = Slow(opening)
            endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.portnum, bindAddress=(source, 0), timeout=30)
            clients.append(await connectProtocol(endpoint, client))
        return clients

    async def health_ms(self) -> float:
        started = time.monotonic()
        response = await treq.get(f"http://127.0.0.1:{self.portnum}/health", persistent=False)
        await response.content()
        self.assertEqual(response.code, 200)
        return (time.monotonic() - started) * 1000

    async def test_2000_slowloris_connections_closed_within_the_header_deadline(self) -> None:
        """2,000 connections trickling header bytes every 0.5 s (the idle timeout never fires) are all
        closed by the header deadline (2 s here, total time), and /health answers meanwhile."""
        clients = await self.open(2000, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        opened = time.monotonic()
        loop = LoopingCall(lambda: [c.trickle() for c in clients])
        loop.start(0.5, now=False)
        self.addCleanup(lambda: loop.running and loop.stop())
        health = []
        while not all(c.closed.called for c in clients) and time.monotonic() - opened < 15:
            health.append(await self.health_ms())
            await deferLater(reactor, 0.2, lambda: None)
        closed_at = await defer.gatherResults([c.closed for c in clients])
        latest = max(closed_at) - opened
        print(f"\n2000 slow connections: last closed {latest:.2f} s after the last opened; /health probes "
              f"{len(health)}, max {max(health):.1f} ms; closures by deadline {self.site.deadline_closures}")
        self.assertLess(latest, self.header_timeout + 1.5)
        self.assertGreaterEqual(self.site.deadline_closures, 2000)
        self.assertTrue(all(c.received == b"" for c in clients))
        self.assertLess(max(health), 1000)
        self.assertLess(await self.health_ms(), 1000)

    async def test_slow_body_is_closed(self) -> None:
        """A body trickling 1 byte every 0.5 s is closed by the minimum rate (after the 5 s grace) or the
        body deadline, whichever comes first; the route never runs."""
        (client,) = await self.open(1, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
        started = time.monotonic()
        loop = LoopingCall(client.trickle)
        loop.start(0.5)
        self.addCleanup(lambda: loop.running and loop.stop())
        closed = await client.closed
        self.assertLess(closed - started, min(4.0, channel.BODY_RATE_GRACE) + 1.5)
        self.assertEqual(client.received, b"")

    async def test_per_address_cap(self) -> None:
        """70 connections from one address with a cap of 64: 6 are closed at once, the rest stay open;
        another address still gets /health."""
        clients = await self.open(70, b"", source_hosts=1)
        await deferLater(reactor, 0.3, lambda: None)
        self.assertEqual(sum(c.closed.called for c in clients), 6)
        self.assertEqual(self.site.refused_connections, 6)
        await self.health_ms()
        for c in clients:
            c.transport.loseConnection()
