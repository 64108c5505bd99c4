"""A client that hangs up while its request is still being handled is not a server error."""
from __future__ import annotations

import secrets
from typing import Any

import treq
from twisted.internet import defer, protocol, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.task import deferLater
from twisted.logger import LogLevel, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from dhis2gw.api.routing import Call, Router, route
from tests.support.gateway import GatewayTestCase


class _SlowArea:
    """One public route that answers only when the test releases it."""

    def __init__(self) -> None:
        self.entered: defer.Deferred[None] = defer.Deferred()
        self.cancelled: defer.Deferred[None] = defer.Deferred()
        self.waiting: list[defer.Deferred[None]] = []

    @route("GET", "/slow", public=True)
    async def slow(self, call: Call) -> dict[str, Any]:
        waiting: defer.Deferred[None] = defer.Deferred()
        self.waiting.append(waiting)
        if not self.entered.called:
            self.entered.callback(None)
        try:
            await waiting
        except defer.CancelledError:
            # Told on the next turn: the router's own handling of the cancellation runs first.
            reactor.callLater(0, self.cancelled.callback, None)
            raise
        return {"ok": True}


class _HangingClient(protocol.Protocol):
    """Sends one request and never reads the answer."""

    def __init__(self, request: bytes) -> None:
        self.request = request

    def connectionMade(self) -> None:  # noqa: N802
        self.transport.write(self.request)


class HangUpTests(GatewayTestCase):
    """An in-process gateway on real PostgreSQL and Redis with a deliberately slow route."""

    async def test_hang_up_mid_request_is_no_error(self) -> None:
        """A client that closes its connection while the handler waits: the handler is cancelled,
        nothing is logged at critical, and neither the request log nor the metrics record a 500.
        The same route answered normally is recorded as a 200 (so the log is really being written)."""
        area = _SlowArea()
        self.gateway.router.mount("/test", area)
        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)

        hung_up_id, answered_id = f"hangup-{secrets.token_hex(4)}", f"answered-{secrets.token_hex(4)}"
        port = int(self.base.rsplit(":", 1)[1])
        client = await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=10),
                                       _HangingClient(b"GET /test/slow HTTP/1.1\r\nHost: x\r\n"
                                                      b"X-Request-ID: " + hung_up_id.encode() + b"\r\n\r\n"))
        await area.entered
        client.transport.loseConnection()
        await area.cancelled
        await deferLater(reactor, 0, lambda: None)

        answered = treq.get(self.url("/test/slow"), headers={"X-Request-ID": answered_id}, persistent=False)
        while len(area.waiting) < 2:
            await deferLater(reactor, 0.01, lambda: None)
        area.waiting[1].callback(None)
        response = await answered
        self.assertEqual((response.code, await response.json()), (200, {"ok": True}))

        await self.gateway.request_log.flush()
        rows = await self.gateway.db.fetch("t", "SELECT request_id, status FROM request_log WHERE request_id IN"
                                                " (%s, %s)", (hung_up_id, answered_id))
        statuses = {r["request_id"]: r["status"] for r in rows}
        self.assertEqual(statuses.get(answered_id), 200)
        self.assertNotEqual(statuses.get(hung_up_id), 500)
        counted = {s.labels["status"]: s.value for metric in self.gateway.metrics.http_requests.collect()
                   for s in metric.samples
                   if s.name.endswith("_total") and s.labels["route"] == "/test/slow"}
        self.assertEqual(counted.get("200"), 1.0)
        self.assertNotIn("500", counted)
        critical = [e for e in events if e.get("log_level") is LogLevel.critical]
        self.assertEqual(critical, [])


class _CancelsItself:
    @route("GET", "/cancelled", public=True)
    async def cancelled(self, call: Call) -> dict[str, Any]:
        waiting: defer.Deferred[None] = defer.Deferred()
        waiting.cancel()
        await waiting
        return {"ok": True}


class CancelledWithoutHangUpTests(SynchronousTestCase):
    """A CancelledError while the client is still connected is a bug in the handler, not a hang-up."""

    def test_is_a_logged_json_500(self) -> None:
        """The client gets the generic JSON 500 and the traceback is logged."""
        from treq.testing import StubTreq

        router = Router(None)
        router.mount("", _CancelsItself())
        client = StubTreq(router.resource())
        response = self.successResultOf(client.get("http://x/cancelled"))
        self.assertEqual(response.code, 500)
        body = self.successResultOf(response.json())
        self.assertEqual(body["error"]["code"], "internal_error")
        self.assertEqual(len(self.flushLoggedErrors(defer.CancelledError)), 1)
