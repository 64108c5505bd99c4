"""Destinations: one DHIS2 client (treq HTTPClient + connection pool) per configured server.

The service owns the clients and closes their cached connections on stop. Destination
readiness for ``/ready`` is the breaker state of each (reported, not required: a DHIS2 outage
must not take the gateway out of the load balancer — it keeps accepting submissions).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.application import service
from twisted.internet import defer

from dhis2gw.dhis2.auth import auth_from_settings
from dhis2gw.dhis2.client import DHIS2Client


class Destinations(service.Service):
    """The DHIS2 clients of every enabled destination."""

    name = "destinations"

    def __init__(self, reactor: Any, config: Any) -> None:
        self.reactor = reactor
        self.entries = config.destinations()
        self.clients: dict[str, DHIS2Client] = {}
        for name, entry in self.entries.items():
            auth = auth_from_settings(entry.user or None, entry.password if entry.user else None,
                                      entry.pat if entry.auth_method == "pat" else None)
            self.clients[name] = DHIS2Client(
                reactor, entry.base_url, auth, max_connections=max(entry.max_concurrent, 1) * 2,
                connect_timeout=config.delivery.connect_timeout, read_timeout=config.delivery.read_timeout,
                max_response_bytes=config.delivery.max_response_bytes)

    def stopService(self) -> defer.Deferred[Any]:  # noqa: N802
        super().stopService()
        return defer.DeferredList([defer.maybeDeferred(c.close) for c in self.clients.values()],
                                  consumeErrors=True)

    def readiness(self, dispatcher: Any | None) -> Callable[[], Any]:
        """A /ready check reporting each destination's breaker (never failing readiness)."""

        async def check() -> dict[str, Any]:
            report: dict[str, Any] = {"ok": True}
            for name in self.clients:
                breaker = dispatcher.breakers.get(name) if dispatcher is not None else None
                if breaker is None:
                    report[name] = {"state": "unknown"}
                else:
                    snap = breaker.snapshot()
                    report[name] = {"state": snap.state, "reason": snap.reason}
            return report

        return check
