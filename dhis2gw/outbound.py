"""Outbound HTTP that a user can influence (callbacks): where it may go, and how it is made safely.

A URL a submitter names is a request the gateway makes from inside the network, so (issue 16, F1):

* **allow-list** — ``AllowRule`` entries matched on scheme, host and port (an exact host or
  ``*.suffix``; a path in the rule is a prefix on ``/`` boundaries). ``startswith`` on the raw
  URL is not used: ``https://hooks.example.org.evil.example/`` does not match
  ``https://hooks.example.org``.
* **address policy** — only globally routable unicast addresses are reached: loopback, private,
  link-local (169.254.169.254, the cloud metadata service), CGNAT, multicast, unspecified
  (``0.0.0.0``), reserved, and IPv4-mapped forms of those are refused, unless an operator lists
  the network in ``allowed_networks`` (a receiver inside the LAN). Hosts written as numbers in a
  non-canonical form (``2130706433``, ``0x7f.1``, ``0177.0.0.1``) are refused outright.
* **checked at connect time** — ``GuardedEndpointFactory`` resolves the name itself, refuses the
  connection when ANY address is refused, and connects to the checked address: a DNS answer that
  changes between the check and the connect (rebinding) cannot reach a refused address.
* **no redirects** — the plain ``Agent`` is used (treq's client follows 3xx by default); a 3xx is
  the receiver's answer like any other.
* **bounded answers** — ``read_capped`` keeps a short excerpt and stops reading (closes the
  connection) after ``max_bytes``; an answer of any size costs at most that much memory.
"""
from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

from twisted.internet import defer, threads
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint, wrapClientTLS
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web.client import BrowserLikePolicyForHTTPS, ResponseDone
from twisted.web.iweb import IAgentEndpointFactory
from zope.interface import implementer

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
#: ``resolve(host, port)`` → the addresses (text) the name has.
Resolver = Callable[[str, int], Awaitable[list[str]]]

_DEFAULT_PORTS = {"http": 80, "https": 443}
#: Something that looks like an IPv4 address in a non-canonical spelling (inet_aton accepts these).
_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}\.?$", re.I)


class OutboundRefused(Exception):
    """The URL or the address it resolves to is not allowed (the message says why)."""


@dataclass(frozen=True)
class AllowRule:
    """One allow-list entry: ``scheme://host[:port][/path]``; host may be ``*.suffix``."""

    scheme: str
    host: str
    port: int
    path: str = ""

    @classmethod
    def parse(cls, text: str) -> AllowRule:
        """Parse a rule; raise ValueError naming the problem."""
        parts = urlsplit(text.strip())
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise ValueError(f"{text!r}: an allowed callback URL must be http(s)://host[:port][/path]")
        try:
            port = parts.port or _DEFAULT_PORTS[parts.scheme]
        except ValueError:
            raise ValueError(f"{text!r}: bad port") from None
        host = parts.hostname.lower().rstrip(".")
        if "*" in host and not (host.startswith("*.") and "*" not in host[2:] and "." in host[2:]):
            raise ValueError(f"{text!r}: a wildcard is only allowed as '*.suffix' with a dotted suffix")
        return cls(parts.scheme, host, port, parts.path.rstrip("/"))

    def matches(self, scheme: str, host: str, port: int, path: str) -> bool:
        """True when the (already normalised) URL parts fall under this rule."""
        if scheme != self.scheme or port != self.port:
            return False
        if self.host.startswith("*."):
            if not host.endswith(self.host[1:]) or host == self.host[2:]:
                return False
        elif host != self.host:
            return False
        return not self.path or path == self.path or path.startswith(self.path + "/")


def _literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def address_refusal(address: Address, allowed_networks: Sequence[Network] = ()) -> str | None:
    """Why connecting to ``address`` is refused, or None."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address in network for network in allowed_networks):
        return None
    for attribute in ("is_unspecified", "is_loopback", "is_link_local", "is_multicast", "is_private",
                      "is_reserved"):
        if getattr(address, attribute):
            return f"{address} is a {attribute[3:].replace('_', '-')} address"
    if not address.is_global:
        return f"{address} is not a public address"
    return None


@dataclass
class OutboundPolicy:
    """Where user-influenced requests may go (see module docstring).

    :param rules: the allow-list; empty means no user-supplied URL is allowed.
    :param allowed_networks: networks reachable despite the address policy (set by operators).
    """

    rules: tuple[AllowRule, ...] = ()
    allowed_networks: tuple[Network, ...] = ()

    @classmethod
    def from_settings(cls, rules: Iterable[str], networks: Iterable[str]) -> OutboundPolicy:
        """Build from text settings; raise ValueError naming a bad entry."""
        parsed_networks = []
        for text in networks:
            try:
                parsed_networks.append(ipaddress.ip_network(text.strip(), strict=False))
            except ValueError:
                raise ValueError(f"{text!r}: not a network (use CIDR, e.g. 10.1.2.0/24)") from None
        return cls(tuple(AllowRule.parse(r) for r in rules if r.strip()), tuple(parsed_networks))

    def url_refusal(self, url: str, *, check_allow_list: bool = True) -> str | None:
        """Why ``url`` is refused before any resolution, or None."""
        try:
            parts = urlsplit(url)
            port = parts.port or _DEFAULT_PORTS.get(parts.scheme, 0)
        except ValueError:
            return "not a valid URL"
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            return "not an http(s) URL"
        if parts.username is not None or parts.password is not None:
            return "credentials in the URL are not allowed"
        host = parts.hostname.lower().rstrip(".")
        literal = _literal(host)
        if literal is None and _NUMERIC_HOST.match(host):
            return f"{host} is a numeric address in a non-canonical form"
        if literal is not None:
            problem = address_refusal(literal, self.allowed_networks)
            if problem:
                return problem
        if check_allow_list and not any(rule.matches(parts.scheme, host, port, parts.path) for rule in self.rules):
            return "not on the callback allow-list" if self.rules else "no callback URL is allowed (empty allow-list)"
        return None

    async def check_resolved(self, host: str, port: int, resolver: Resolver) -> list[Address]:
        """Resolve ``host`` and return its addresses; raise OutboundRefused when any is refused."""
        literal = _literal(host)
        if literal is not None:
            addresses: list[Address] = [literal]
        else:
            if _NUMERIC_HOST.match(host):
                raise OutboundRefused(f"{host} is a numeric address in a non-canonical form")
            try:
                texts = await resolver(host, port)
            except Exception as e:  # noqa: BLE001 - resolution failure is a refusal to connect
                raise OutboundRefused(f"{host} does not resolve ({type(e).__name__})") from None
            addresses = []
            for text in texts:
                try:
                    addresses.append(ipaddress.ip_address(text.split("%", 1)[0]))
                except ValueError:
                    raise OutboundRefused(f"{host} resolved to {text!r}, not an address") from None
        if not addresses:
            raise OutboundRefused(f"{host} has no address")
        for address in addresses:
            problem = address_refusal(address, self.allowed_networks)
            if problem:
                raise OutboundRefused(f"{host}: {problem}")
        return addresses


def system_resolver(reactor: Any) -> Resolver:
    """getaddrinfo in the reactor's thread pool (every address, IPv4 and IPv6)."""

    async def resolve(host: str, port: int) -> list[str]:
        infos = await threads.deferToThreadPool(reactor, reactor.getThreadPool(), socket.getaddrinfo, host, port,
                                                0, socket.SOCK_STREAM)
        return list(dict.fromkeys(str(info[4][0]) for info in infos))

    return resolve


class _GuardedEndpoint:
    """Resolve, check every address, then connect to the first checked one (TLS for https)."""

    def __init__(self, factory: GuardedEndpointFactory, scheme: str, host: str, port: int) -> None:
        self.factory = factory
        self.scheme = scheme
        self.host = host
        self.port = port

    def connect(self, protocol_factory: Any) -> defer.Deferred[Any]:
        return defer.Deferred.fromCoroutine(self._connect(protocol_factory))

    async def _connect(self, protocol_factory: Any) -> Any:
        f = self.factory
        addresses = await f.policy.check_resolved(self.host, self.port, f.resolver)
        address = addresses[0]
        endpoint_class = TCP6ClientEndpoint if address.version == 6 else TCP4ClientEndpoint
        endpoint: Any = endpoint_class(f.reactor, str(address), self.port, timeout=f.connect_timeout)
        if self.scheme == "https":
            creator = f.tls_policy.creatorForNetloc(self.host.encode("idna"), self.port)
            endpoint = wrapClientTLS(creator, endpoint)
        return await endpoint.connect(protocol_factory)


@implementer(IAgentEndpointFactory)
class GuardedEndpointFactory:
    """``Agent.usingEndpointFactory`` endpoints that enforce ``policy`` when connecting."""

    def __init__(self, reactor: Any, policy: OutboundPolicy, resolver: Resolver | None = None,
                 connect_timeout: float = 10.0, tls_policy: Any = None) -> None:
        self.reactor = reactor
        self.policy = policy
        self.resolver = resolver or system_resolver(reactor)
        self.connect_timeout = connect_timeout
        self.tls_policy = tls_policy or BrowserLikePolicyForHTTPS()

    def endpointForURI(self, uri: Any) -> _GuardedEndpoint:  # noqa: N802 - Twisted interface
        scheme = uri.scheme.decode("ascii")
        if scheme not in _DEFAULT_PORTS:
            raise OutboundRefused(f"scheme {scheme!r} is not allowed")
        return _GuardedEndpoint(self, scheme, uri.host.decode("idna").lower(), uri.port)


class _CappedReader(Protocol):
    def __init__(self, finished: defer.Deferred[tuple[bytes, int, bool]], max_bytes: int, keep: int) -> None:
        self.finished = finished
        self.max_bytes = max_bytes
        self.keep = keep
        self.kept: list[bytes] = []
        self.kept_size = 0
        self.seen = 0
        self.truncated = False

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        self.seen += len(data)
        if self.kept_size < self.keep:
            piece = data[: self.keep - self.kept_size]
            self.kept.append(piece)
            self.kept_size += len(piece)
        if self.seen > self.max_bytes and not self.truncated:
            self.truncated = True
            # The body's transport is a producer; stopping it closes the connection: nothing more is read.
            cast(IPushProducer, self.transport).stopProducing()

    def connectionLost(self, reason: Failure = ResponseDone) -> None:  # type: ignore[assignment]  # noqa: N802
        if not self.finished.called:
            self.finished.callback((b"".join(self.kept), self.seen, self.truncated))


def read_capped(response: Any, max_bytes: int, keep: int = 512) -> defer.Deferred[tuple[bytes, int, bool]]:
    """Read ``response``'s body, keeping its first ``keep`` bytes and stopping after ``max_bytes``.

    Fires with ``(excerpt, bytes seen, truncated)``; never holds more than ``keep`` bytes.
    """
    finished: defer.Deferred[tuple[bytes, int, bool]] = defer.Deferred()
    response.deliverBody(_CappedReader(finished, max_bytes, keep))
    return finished
