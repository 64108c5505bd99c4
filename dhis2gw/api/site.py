"""The twisted.web Site: request ids, the body size limit and request observation.

``GatewayRequest`` refuses oversized bodies while they arrive: it stops buffering as soon as
the declared ``Content-Length`` (or the chunked stream so far) passes the limit, and the route
answers 413 without ever reading the body. Every request gets an id (the client's
``X-Request-ID`` when it is sane, else a new one), echoed in the response. When the response
is finished the site's observers (request log, metrics) are told what happened.
"""
from __future__ import annotations

import io
import ipaddress
import json
import re
import secrets
import time
from collections.abc import Callable, Sequence
from typing import Any, cast
from urllib.parse import unquote_to_bytes

from twisted.web import server

from dhis2gw.api.channel import GatewayChannel
from dhis2gw.errors import ApiError
from dhis2gw.logtext import printable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def forwarded_client(peer: str | None, forwarded_for: Sequence[bytes], trusted: Sequence[Network]) -> str | None:
    """The client's address: ``peer``, unless ``peer`` is a trusted proxy (issue 16, F6).

    Then ``X-Forwarded-For`` is read from the right (each proxy appends the address it saw),
    skipping trusted proxies: the first untrusted hop is the client. Entries left of it were
    written by the client and are never believed. A malformed hop ends the walk at the last
    trusted address.
    """
    if peer is None or not trusted or not _in(peer, trusted):
        return peer
    hops = [hop.strip() for value in forwarded_for for hop in value.decode("latin-1").split(",") if hop.strip()]
    address = peer
    for hop in reversed(hops):
        if not _in(hop, trusted):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return address
        address = hop
    return address


def _in(address: str, networks: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in networks)


_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")

FinishObserver = Callable[["GatewayRequest"], None]


CONTENT_SECURITY_POLICY = (b"default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                           b"frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


class GatewayRequest(server.Request):
    """A request with an id, a body size limit and a finish hook."""

    def setHeader(self, name: Any, value: Any) -> None:  # noqa: N802
        # Twisted announces its version in "Server"; say only what this is (issue 16, F17).
        if (name.lower() if isinstance(name, bytes) else str(name).lower().encode()) == b"server":
            value = b"dhis2gw"
        super().setHeader(name, value)

    request_id: str = ""
    body_too_large: bool = False
    received_bytes: int = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Forms are parsed by the routes that take uploads (dhis2gw.api.uploads), so a malformed
        # multipart body gets a JSON 400 instead of Twisted's bare one.
        self._parsePOSTFormSubmission = False
        self.started_at = time.monotonic()
        self.route = None
        self.principal = None
        self.error_code: str | None = None

    @property
    def _site(self) -> Any:
        """The site that built the channel (``Site.buildProtocol`` sets ``channel.site``, which
        ``HTTPChannel`` does not declare)."""
        return cast(GatewayChannel, self.channel).site

    @property
    def client_ip(self) -> str | None:
        """The client's address (the peer, or what a trusted proxy forwarded; see ``forwarded_client``)."""
        cached = self.__dict__.get("_client_ip", False)
        if cached is not False:
            return cached  # type: ignore[no-any-return]
        try:
            peer = getattr(self.getClientAddress(), "host", None)
        except Exception:  # noqa: BLE001 - odd transports have no address
            peer = None
        trusted = getattr(self._site, "trusted_proxies", ()) if self.channel is not None else ()
        value = forwarded_client(peer, self.requestHeaders.getRawHeaders(b"x-forwarded-for", []), trusted)
        self.__dict__["_client_ip"] = value
        return value

    # -- size limit --------------------------------------------------------------------
    @property
    def max_body(self) -> int:
        """The site's body limit in bytes."""
        return int(getattr(self._site, "max_body_bytes", 10 * 1024 * 1024))

    def gotLength(self, length: int | None) -> None:  # noqa: N802
        if length is not None and length > self.max_body:
            self.body_too_large = True
            self.content = io.BytesIO()
            return
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:  # noqa: N802
        self.received_bytes += len(data)
        if self.body_too_large:
            return
        if self.received_bytes > self.max_body:
            self.body_too_large = True
            self.content = io.BytesIO()
            return
        super().handleContentChunk(data)

    def check_body_limit(self) -> None:
        """Raise the 413 for an oversized body (called by the router before any work)."""
        if self.body_too_large:
            raise ApiError(413, "payload_too_large",
                           f"the request body exceeds the limit of {self.max_body} bytes",
                           {"limit_bytes": self.max_body})

    # -- ids and observation -----------------------------------------------------------
    def process(self) -> None:
        raw = self.getHeader(b"x-request-id")
        incoming = raw.decode("latin-1") if isinstance(raw, bytes) else raw
        if incoming and _REQUEST_ID.match(incoming):
            self.request_id = incoming
        else:
            self.request_id = secrets.token_hex(16)
        self.setHeader(b"X-Request-ID", self.request_id.encode())
        self.setHeader(b"X-Content-Type-Options", b"nosniff")
        # Pages (docs, Swagger UI) may not be framed or load anything from elsewhere (issue 16, F17).
        self.setHeader(b"X-Frame-Options", b"DENY")
        self.setHeader(b"Content-Security-Policy", CONTENT_SECURITY_POLICY)
        self.setHeader(b"Referrer-Policy", b"no-referrer")
        try:
            # Klein answers a non-UTF-8 path or Host with a bare text 400 (and logs an error); answer
            # with the JSON envelope instead.
            unquote_to_bytes(self.uri.split(b"?", 1)[0]).decode("utf-8")
            self.getRequestHostname().decode("utf-8")
        except UnicodeDecodeError:
            self.setResponseCode(400)
            self.setHeader(b"Content-Type", b"application/json")
            error = ApiError(400, "bad_request", "the URL path or Host header is not valid UTF-8")
            self.write(json.dumps(error.envelope()).encode())
            self.finish()
            return
        super().process()

    def finish(self) -> None:
        try:
            for observer in getattr(self._site, "finish_observers", ()):
                try:
                    observer(self)
                except Exception:  # noqa: BLE001 - an observer must never break a response
                    from twisted.logger import Logger

                    Logger().failure("request observer failed")
        finally:
            super().finish()

    @property
    def duration(self) -> float:
        """Seconds since the request was received."""
        return time.monotonic() - self.started_at


class GatewaySite(server.Site):
    """A Site using GatewayRequest, with no access log by default (it costs 30–50 %).

    Its connections are ``GatewayChannel``s: header and body deadlines, a minimum body rate and a
    per-address connection cap (``dhis2gw.api.channel``).
    """

    requestFactory = GatewayRequest  # noqa: N815
    # Twisted types this as its HTTP/2-negotiating wrapper factory; any HTTPChannel class works.
    protocol = GatewayChannel  # type: ignore[assignment]
    noisy = False  # no "Starting factory" / "Stopping factory" lines: the listener logs its own one line

    def __init__(self, resource: Any, max_body_bytes: int, access_log: bool = False,
                 finish_observers: list[FinishObserver] | None = None, trusted_proxies: Sequence[str] = (),
                 header_timeout: float = 10.0, body_timeout: float = 120.0, min_body_rate: int = 1024,
                 max_connections_per_address: int = 64, reactor: Any = None) -> None:
        super().__init__(resource, reactor=reactor)
        self._logFormatter = self.redacted_log_line
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self.min_body_rate = min_body_rate
        self.max_connections_per_address = max_connections_per_address
        self.connections_by_address: dict[str | None, int] = {}
        self.refused_connections = 0
        self.deadline_closures = 0
        self.trusted_proxies: tuple[Network, ...] = tuple(ipaddress.ip_network(p, strict=False)
                                                          for p in trusted_proxies)
        self.max_body_bytes = max_body_bytes
        self.access_log = access_log
        self.finish_observers: list[FinishObserver] = list(finish_observers or [])
        self.displayTracebacks = False

    def clock_seconds(self) -> float:
        """Now, on the site's reactor."""
        return float(self.reactor.seconds())

    def admit_connection(self, peer: str | None) -> bool:
        """Count a new connection from ``peer``; False when the address is over its cap."""
        if peer is not None and _in(peer, self.trusted_proxies):
            return True  # a reverse proxy carries many clients: it limits them itself
        count = self.connections_by_address.get(peer, 0)
        if count >= self.max_connections_per_address:
            return False
        self.connections_by_address[peer] = count + 1
        return True

    def release_connection(self, peer: str | None) -> None:
        """A connection admitted by ``admit_connection`` closed."""
        count = self.connections_by_address.get(peer, 0) - 1
        if count > 0:
            self.connections_by_address[peer] = count
        else:
            self.connections_by_address.pop(peer, None)

    def log(self, request: Any) -> None:
        if self.access_log:
            super().log(request)

    def redacted_log_line(self, timestamp: str, request: Any) -> str:
        """The combined log format with sensitive query values replaced (issue 16, F10)."""
        from dhis2gw.api.request_log import redacted_path
        from dhis2gw.auth.authenticator import client_address

        def quoted(value: Any) -> str:
            text = value.decode("latin-1") if isinstance(value, bytes) else str(value or "-")
            return printable(text.replace('"', "%22"), 500)

        referrer = request.getHeader(b"referer") or b"-"
        agent = request.getHeader(b"user-agent") or b"-"
        line = '"{ip}" - - {ts} "{method} {uri} {proto}" {code} {length} "{referrer}" "{agent}"'
        return line.format(ip=client_address(request) or "-", ts=timestamp, method=quoted(request.method),
                           uri=quoted(redacted_path(request.uri)), proto=quoted(request.clientproto),
                           code=request.code, length=request.sentLength or "-", referrer=quoted(referrer),
                           agent=quoted(agent))
