"""Connection hygiene for the API listener (issue 16, F7): deadlines, a body rate, a per-address cap.

Twisted's idle timeout restarts on every byte, so a client trickling one header byte every few
seconds (slowloris) kept a connection, and a file descriptor, for ever. ``GatewayChannel`` adds:

* a **header deadline** — the request line and all headers must arrive within
  ``header_timeout`` seconds of the request's first byte (of the connection, for the first
  request), in total, however the bytes are spread;
* a **body deadline** — the whole body within ``body_timeout`` seconds of the end of headers;
* a **minimum body rate** — after ``BODY_RATE_GRACE`` seconds a body must have averaged
  ``min_body_rate`` bytes per second (0: no minimum);
* a **per-address cap** — at most ``max_connections_per_address`` open connections from one
  peer address; more are closed at once. Trusted proxies (``server.trusted_proxies``) are exempt:
  behind nginx every client has the proxy's address (nginx limits per client instead, see
  ``docs/security.md``).

A connection that misses a deadline or the rate is aborted without an answer (the slow client is
the only one who would read it). Times come from the site's reactor (``callLater``), like
Twisted's own idle timeout.
"""
from __future__ import annotations

from functools import partial
from typing import Any, cast

from twisted.internet.interfaces import ITCPTransport
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import http

#: Seconds a body may take before the minimum rate applies (TCP slow start, a mobile link waking up).
BODY_RATE_GRACE = 5.0


class GatewayChannel(http.HTTPChannel):
    """``HTTPChannel`` with total-time deadlines, a body rate and the per-address cap (module docstring)."""

    log = Logger()
    site: Any

    def __init__(self) -> None:
        super().__init__()
        self._phase = "headers"
        self._deadline: Any = None
        self._rate_check: Any = None
        self._body_started = 0.0
        self._body_bytes = 0
        self._peer: str | None = None
        self._counted = False

    @property
    def _tcp(self) -> ITCPTransport:
        """The connection (TCP, or TLS over TCP): connected from ``connectionMade`` on."""
        return cast(ITCPTransport, self.transport)

    # --- lifecycle -----------------------------------------------------------------------------
    def connectionMade(self) -> None:  # noqa: N802
        super().connectionMade()
        site = self.site
        self._peer = getattr(self._tcp.getPeer(), "host", None)
        if not site.admit_connection(self._peer):
            site.refused_connections += 1
            self._tcp.abortConnection()
            return
        self._counted = True
        self._start_deadline(site.header_timeout, "header")

    def connectionLost(self, reason: Failure = connectionDone) -> None:  # noqa: N802
        self._cancel()
        if self._counted:
            self._counted = False
            self.site.release_connection(self._peer)
        super().connectionLost(reason)

    # --- phases ------------------------------------------------------------------------------------
    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        if self._phase == "idle":  # the first byte of the next request on a kept-alive connection
            self._phase = "headers"
            self._start_deadline(self.site.header_timeout, "header")
        super().dataReceived(data)

    def allHeadersReceived(self) -> None:  # noqa: N802
        self._cancel()
        super().allHeadersReceived()
        if self.length != 0:  # a Content-Length body or a chunked one
            self._phase = "body"
            self._body_started = self.site.clock_seconds()
            self._body_bytes = 0
            self._start_deadline(self.site.body_timeout, "body")
            if self.site.min_body_rate > 0:
                self._rate_check = self.callLater(BODY_RATE_GRACE, self._check_rate)

    def rawDataReceived(self, data: bytes) -> None:  # noqa: N802
        if self._phase == "body":
            self._body_bytes += len(data)
        super().rawDataReceived(data)

    def allContentReceived(self) -> None:  # noqa: N802
        self._cancel()
        self._phase = "idle"
        super().allContentReceived()

    # --- timers ------------------------------------------------------------------------------------
    def _start_deadline(self, seconds: float, what: str) -> None:
        self._cancel()
        self._deadline = self.callLater(seconds, partial(self._expired, what))

    def _cancel(self) -> None:
        for call in (self._deadline, self._rate_check):
            if call is not None and call.active():
                call.cancel()
        self._deadline = self._rate_check = None

    def _expired(self, what: str) -> None:
        self._deadline = None
        self.site.deadline_closures += 1
        self.log.debug("Closing a connection from {peer}: {what} deadline passed", peer=self._peer, what=what)
        self._cancel()
        self._tcp.abortConnection()

    def _check_rate(self) -> None:
        self._rate_check = None
        if self._phase != "body":
            return
        elapsed = self.site.clock_seconds() - self._body_started
        if self._body_bytes < self.site.min_body_rate * elapsed:
            self.site.deadline_closures += 1
            self.log.debug("Closing a connection from {peer}: body slower than {rate} B/s", peer=self._peer,
                           rate=self.site.min_body_rate)
            self._cancel()
            self._tcp.abortConnection()
            return
        self._rate_check = self.callLater(1.0, self._check_rate)
