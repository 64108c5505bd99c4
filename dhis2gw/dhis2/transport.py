"""The DHIS2 client's HTTP layer: the treq interface it needs, its connection pool, its body producer.

`dhis2gw.dhis2.client.DHIS2Client` builds `pooled_treq` over `persistent_pool` unless it is given
another `TreqLike` (tests: ``treq.testing.StubTreq`` serving the simulator, dhis2gw.testing).
"""
from __future__ import annotations

from typing import Any, Protocol

from treq.client import HTTPClient
from twisted.internet.defer import Deferred, succeed
from twisted.web.client import Agent, BrowserLikePolicyForHTTPS, HTTPConnectionPool
from twisted.web.iweb import IBodyProducer, IPolicyForHTTPS
from zope.interface import implementer


class TreqLike(Protocol):
    """What the client needs of its HTTP layer: treq's ``request`` (a treq ``HTTPClient``, ``StubTreq``)."""

    def request(self, method: str, url: str, *, params: Any = None, headers: Any = None, data: Any = None,
                allow_redirects: bool = True, unbuffered: bool = False, reactor: Any = None) -> Deferred[Any]:
        """Send one request (``data``: the body as bytes); the Deferred fires with a treq response."""


def api_root(base_url: str) -> str:
    """``https://h/dhis``, ``https://h/dhis/`` and ``https://h/dhis/api[/]`` -> ``https://h/dhis/api/``."""
    url = base_url.strip().rstrip("/")
    if not url.endswith("/api"):
        url += "/api"
    return url + "/"


@implementer(IBodyProducer)
class _BytesProducer:
    """A request body already in memory, written at once (no cooperator, no global reactor)."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self.length = len(data)

    def startProducing(self, consumer: Any) -> Deferred[None]:  # noqa: N802 - IBodyProducer's names
        consumer.write(self._data)
        return succeed(None)

    def pauseProducing(self) -> None:  # noqa: N802
        """Nothing to pause: the body was written in one go."""

    def resumeProducing(self) -> None:  # noqa: N802
        """Nothing to resume."""

    def stopProducing(self) -> None:  # noqa: N802
        """Nothing to stop."""


def persistent_pool(reactor: Any, max_connections: int, idle_connection_timeout: float) -> HTTPConnectionPool:
    """One destination's persistent connection pool.

    Idle connections are dropped before the server does (Tomcat closes after ~20 s): a POST
    written on a connection the server is closing looks exactly like a lost answer and would
    spend a retry.
    """
    pool = HTTPConnectionPool(reactor, persistent=True)
    pool.maxPersistentPerHost = max_connections
    pool.cachedConnectionTimeout = idle_connection_timeout  # type: ignore[assignment]  # Twisted types it int; seconds
    return pool


def pooled_treq(reactor: Any, pool: HTTPConnectionPool, connect_timeout: float,
                tls_policy: IPolicyForHTTPS | None) -> HTTPClient:
    """The real HTTP layer: one treq HTTPClient over ``pool``; bodies are written from memory."""
    agent = Agent(reactor, contextFactory=tls_policy or BrowserLikePolicyForHTTPS(), connectTimeout=connect_timeout,
                  pool=pool)
    return HTTPClient(agent, data_to_body_producer=_BytesProducer)
