"""The HTTP session with one gateway: tokens, requests, errors.

``GatewayClient`` logs in with ``POST /users/getToken`` (JWT pair), refreshes the pair with
``POST /users/refreshToken`` shortly BEFORE the access token expires (and once more if the
gateway still says it expired), and forgets both on logout (the gateway has no logout route:
tokens die at expiry; the refresh token is never reused). Every failure becomes a
``GatewayError`` with a plain message (``dhis2gw_admin.errors``).

It runs on whatever Twisted reactor it is given: in the app that is the reactor Kivy's
``install_twisted_reactor`` interleaves with its event loop; in tests the default one.
"""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from treq.client import HTTPClient
from twisted.internet import defer
from twisted.internet.error import ConnectError, DNSLookupError
from twisted.internet.error import TimeoutError as TxTimeoutError
from twisted.web.client import Agent, HTTPConnectionPool, ResponseFailed, ResponseNeverReceived

from dhis2gw_admin.errors import AuthenticationFailed, GatewayError, connection_problem, error_from_response

API_PREFIX = "/api/v2"
#: Refresh when less than this many seconds of the access token are left.
REFRESH_MARGIN = 60.0


@dataclass
class Session:
    """Who is logged in and with which tokens."""

    username: str
    user_uid: str
    role: str
    access_token: str
    refresh_token: str
    access_expires_at: float
    refresh_expires_at: float | None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def jwt_claims(token: str) -> dict[str, Any]:
    """The (unverified) claims of a JWT: the client only reads its own role and uid from it."""
    try:
        payload = token.split(".")[1]
        return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))
    except (IndexError, ValueError, TypeError):
        return {}


def normalise_server_url(url: str) -> str:
    """``host:port`` or a full URL → ``http(s)://host:port`` without a trailing slash or /api/v2."""
    url = url.strip().rstrip("/")
    if not url:
        raise GatewayError("Enter the gateway's address, for example http://127.0.0.1:9090.")
    if "://" not in url:
        url = "http://" + url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise GatewayError(f"{url!r} is not a web address; use for example http://127.0.0.1:9090.")
    path = parts.path.rstrip("/")
    if path.endswith(API_PREFIX):
        path = path[: -len(API_PREFIX)]
    return f"{parts.scheme}://{parts.netloc}{path}"


@dataclass
class Reply:
    """A successful answer: status, headers and the raw body (``json()`` parses it)."""

    status: int
    body: bytes
    content_type: str
    filename: str | None = None

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8")) if self.body else None


class GatewayClient:
    """One gateway, one logged-in user.

    :param reactor: the Twisted reactor (its ``seconds()`` is also the token clock unless
        ``clock`` is given).
    :param timeout: seconds to wait for an answer before reporting the gateway unreachable.
    """

    def __init__(self, reactor: Any, base_url: str = "http://127.0.0.1:9090", timeout: float = 30.0,
                 clock: Any = None) -> None:
        self.reactor = reactor
        self.clock = clock or reactor
        self.timeout = timeout
        self.base_url = normalise_server_url(base_url)
        self.session: Session | None = None
        self._pool = HTTPConnectionPool(reactor, persistent=True)
        self._pool.maxPersistentPerHost = 4
        self._http = HTTPClient(Agent(reactor, pool=self._pool))
        self._refreshing: defer.Deferred[None] | None = None
        #: Called with no argument when the session ends by itself (refresh refused): the app
        #: shows the login screen again.
        self.on_session_ended: list[Any] = []

    # --- session ------------------------------------------------------------------------------
    def set_server(self, base_url: str) -> None:
        """Point at another gateway (logs out of the current one)."""
        self.base_url = normalise_server_url(base_url)
        self.session = None

    def _session_from(self, pair: dict[str, Any], username: str) -> Session:
        claims = jwt_claims(pair["access_token"])
        now = self.clock.seconds()
        refresh_in = pair.get("refresh_expires_in")
        return Session(username=username, user_uid=str(claims.get("sub", "")), role=str(claims.get("role", "")),
                       access_token=pair["access_token"], refresh_token=pair["refresh_token"],
                       access_expires_at=now + float(pair.get("expires_in") or 0),
                       refresh_expires_at=now + float(refresh_in) if refresh_in else None)

    async def login(self, username: str, password: str) -> Session:
        """Exchange username and password for a token pair; the password is not kept."""
        reply = await self._send("POST", "/users/getToken", json_body={"username": username, "password": password},
                                 auth=False)
        pair = reply.json()
        self.session = self._session_from(pair, username)
        return self.session

    async def refresh(self) -> Session:
        """Rotate the token pair now (one rotation at a time, whoever asks)."""
        if self._refreshing is not None:
            await self._refreshing
            assert self.session is not None
            return self.session
        if self.session is None:
            raise AuthenticationFailed("You are not logged in.", 401, "unauthenticated")
        self._refreshing = defer.Deferred()
        try:
            reply = await self._send("POST", "/users/refreshToken",
                                     json_body={"refresh_token": self.session.refresh_token}, auth=False)
            self.session = self._session_from(reply.json(), self.session.username)
        except AuthenticationFailed:
            self.session = None
            for listener in list(self.on_session_ended):
                listener()
            raise AuthenticationFailed("Your session has ended. Please log in again.", 401, "session_ended") from None
        finally:
            waiting, self._refreshing = self._refreshing, None
            waiting.callback(None)
        return self.session

    def logout(self) -> None:
        """Forget the tokens (the gateway lets them expire; there is no logout route)."""
        self.session = None

    def needs_refresh(self) -> bool:
        """Whether the access token expires within ``REFRESH_MARGIN`` seconds."""
        return self.session is not None and self.session.access_expires_at - self.clock.seconds() < REFRESH_MARGIN

    async def close(self) -> None:
        """Close the idle keep-alive connections (tests and app exit)."""
        await self._pool.closeCachedConnections()

    # --- requests -----------------------------------------------------------------------------
    async def request(self, method: str, path: str, params: dict[str, Any] | None = None,
                      json_body: Any = None, data: bytes | None = None,
                      content_type: str | None = None) -> Reply:
        """An authenticated request to ``/api/v2<path>``; a GatewayError unless 2xx."""
        if self.session is None:
            raise AuthenticationFailed("You are not logged in.", 401, "unauthenticated")
        if self.needs_refresh():
            await self.refresh()
        try:
            return await self._send(method, path, params, json_body, data, content_type)
        except AuthenticationFailed as e:
            if e.code != "token_expired" or self.session is None:
                raise
            await self.refresh()  # our clock and the gateway's disagree: rotate and retry once
            return await self._send(method, path, params, json_body, data, content_type)

    async def get_json(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return (await self.request("GET", path, params)).json()

    async def post_json(self, path: str, body: Any = None, params: dict[str, Any] | None = None) -> Any:
        return (await self.request("POST", path, params, json_body=body)).json()

    async def put_json(self, path: str, body: Any) -> Any:
        return (await self.request("PUT", path, json_body=body)).json()

    async def delete_json(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return (await self.request("DELETE", path, params)).json()

    async def _send(self, method: str, path: str, params: dict[str, Any] | None = None, json_body: Any = None,
                    data: bytes | None = None, content_type: str | None = None, auth: bool = True) -> Reply:
        headers: dict[bytes, list[bytes]] = {b"Accept": [b"application/json"]}
        if auth and self.session is not None:
            headers[b"Authorization"] = [f"Bearer {self.session.access_token}".encode()]
        body: bytes | None = data
        if json_body is not None:
            body = json.dumps(json_body).encode()
            content_type = "application/json"
        if content_type:
            headers[b"Content-Type"] = [content_type.encode()]
        url = self.base_url + API_PREFIX + path
        query = {k: v for k, v in (params or {}).items() if v not in (None, "", [])}
        try:
            d = self._http.request(method, url, headers=headers, params=query or None, data=body)
            d.addTimeout(self.timeout, self.reactor)
            response = await d
            raw = await response.content()
        except (ConnectError, DNSLookupError, TxTimeoutError, defer.CancelledError, ResponseFailed,
                ResponseNeverReceived) as e:
            raise connection_problem(self.base_url, f"{type(e).__name__}: {e}") from None
        if response.code >= 400:
            retry_after = response.headers.getRawHeaders(b"retry-after", [b""])[0].decode() or None
            raise error_from_response(response.code, raw, retry_after)
        ctype = response.headers.getRawHeaders(b"content-type", [b""])[0].decode()
        disposition = response.headers.getRawHeaders(b"content-disposition", [b""])[0].decode()
        filename = disposition.split("filename=", 1)[1].strip('"; ') if "filename=" in disposition else None
        return Reply(response.code, raw, ctype, filename)
