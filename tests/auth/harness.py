"""A users API on a real 127.0.0.1 port with the request log, for the auth tests.

Each test gets a fresh migrated database, auth objects on a ``task.Clock`` (tokens, caches,
throttling), cheap argon2 parameters, a ``GatewaySite`` with the request-log writer as finish
observer, and a treq client. Every response body, every log line and (at cleanup) every
request_log row goes through a ``SecretsScanner``; a finding fails the test.
"""
from __future__ import annotations

import base64
import json
import time
from types import SimpleNamespace
from typing import Any

import treq
from twisted.internet import defer, reactor
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, HTTPConnectionPool

from dhis2gw.api.request_log import RequestLogWriter, RequestsApi
from dhis2gw.api.routing import ADMIN, ANY_USER, OPERATOR, Call, Router, route
from dhis2gw.api.site import GatewaySite
from dhis2gw.api.users import UsersApi
from dhis2gw.auth.passwords import PasswordHasher
from dhis2gw.auth.sessions import AuthServices, build_auth
from dhis2gw.dhis2.uids import generate_uid
from dhis2gw.storage.database import Database
from dhis2gw.storage.request_log import RequestLogStore
from tests.support.backends import open_redis
from tests.support.secrets_scan import SecretsScanner
from tests.support.services import migrated_database

JWT_SECRET = "test-jwt-secret-" + "s" * 40
ISSUING = ("/users/getToken", "/users/refreshToken", "/tokens")


class DummyArea:
    """Routes for each role level and path-argument shape, standing in for future areas."""

    @route("GET", "/dummy/admin", roles=ADMIN)
    async def admin_only(self, call: Call) -> dict[str, Any]:
        return {"who": call.require_principal().username}

    @route("POST", "/dummy/operator/<int:item_id>", roles=OPERATOR,
           body_schema={"type": "object"}, status=202)
    async def operator(self, call: Call, item_id: int) -> dict[str, Any]:
        return {"item": item_id}

    @route("GET", "/dummy/any", roles=ANY_USER)
    async def any_user(self, call: Call) -> dict[str, Any]:
        return {"role": call.require_principal().role}

    @route("GET", "/dummy/public", public=True)
    async def public(self, call: Call) -> dict[str, Any]:
        return {"ok": True}

    @route("DELETE", "/dummy/things/<thing_id>", roles=ADMIN)
    async def delete_thing(self, call: Call, thing_id: str) -> dict[str, Any]:
        return {"deleted": thing_id}

    @route("GET", "/dummy/own/<uid>", roles=ADMIN, self_allowed=True)
    async def own(self, call: Call, uid: str) -> dict[str, Any]:
        return {"uid": uid}


class AuthApiTestCase(TestCase):
    """Base class: starts the stack in setUp; ``self.call`` sends requests."""

    max_failures = 5
    lockout_seconds = 300
    admin_password = "Admin-Password-2024"
    #: Keep the login budget in the test Redis (as the gateway does) instead of this process.
    use_redis = False
    #: ``server.trusted_proxies`` of the site.
    trusted_proxies: tuple[str, ...] = ()
    #: ``server.max_connections_per_address`` of the site (every test client is 127.0.0.1).
    max_connections_per_address = 64

    def setUp(self) -> defer.Deferred[Any]:
        return defer.Deferred.fromCoroutine(self._start())

    async def _start(self) -> None:
        self.scanner = SecretsScanner()
        self.scanner.add_secret(JWT_SECRET, "JWT secret")
        self.scanner.add_secret(self.admin_password, "admin password")
        self.addCleanup(self.scanner.capture_logs())
        self.clock = Clock()
        self.clock.advance(time.time())
        self.db = Database(reactor, migrated_database(), size=2)
        self.db.startService()
        await self.db.started
        config = SimpleNamespace(jwt_secret=JWT_SECRET, jwt_issuer="dhis2gw-test", access_token_ttl=900,
                                 refresh_token_ttl=7 * 86400, basic_auth_cache_seconds=60,
                                 login_max_failures=self.max_failures, login_lockout_seconds=self.lockout_seconds,
                                 password_min_length=10)
        hasher = PasswordHasher(reactor, time_cost=1, memory_cost=1024, parallelism=1)
        redis, prefix = open_redis(self) if self.use_redis else (None, "dhis2gw")
        self.auth: AuthServices = build_auth(reactor, self.db, config, hasher=hasher, clock=self.clock,
                                             redis=redis, redis_prefix=prefix)
        self.log_store = RequestLogStore(self.db)
        self.writer = RequestLogWriter(self.clock, self.log_store, batch_size=50, max_buffer=1000,
                                       body_excerpt_bytes=512)
        self.writer.startService()
        self.router = Router(self.auth.authenticator)
        self.router.mount("/api/v2", UsersApi(self.auth))
        self.router.mount("/api/v2", RequestsApi(self.log_store))
        self.router.mount("/api/v2", DummyArea())
        site = GatewaySite(self.router.resource(), max_body_bytes=64 * 1024, finish_observers=[self.writer.observe],
                           trusted_proxies=self.trusted_proxies,
                           max_connections_per_address=self.max_connections_per_address)
        self.port = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.base = f"http://127.0.0.1:{self.port.getHost().port}"
        self.pool = HTTPConnectionPool(reactor, persistent=True)
        self.http = treq.client.HTTPClient(Agent(reactor, pool=self.pool))
        self.addCleanup(self._stop)
        self.admin = await self.make_user("root-admin", "admin", self.admin_password)

    async def _stop(self) -> None:
        await self.pool.closeCachedConnections()
        await self.port.stopListening()
        await self.writer.stopService()
        rows = await self.db.fetch("scan", "SELECT * FROM request_log")
        await self.db.stopService()
        self.scanner.check_rows("request_log", rows)
        self.scanner.check_log_lines()
        self.assertEqual(self.scanner.findings, [])

    # --- helpers ---------------------------------------------------------------------
    async def make_user(self, username: str, role: str, password: str, **extra: Any) -> dict[str, Any]:
        """Create a user directly in the store (registers its password with the scanner)."""
        self.scanner.add_secret(password, f"password of {username}")
        return await self.auth.users.create(uid=generate_uid(), username=username,
                                            password_hash=await self.auth.hasher.hash(password), role=role, **extra)

    def bearer(self, user: dict[str, Any]) -> dict[str, str]:
        """An Authorization header with a fresh access token for ``user``."""
        return {"Authorization": "Bearer " + self.auth.issuer.issue_access(user).token}

    @staticmethod
    def basic(username: str, password: str) -> dict[str, str]:
        """A Basic Authorization header."""
        return {"Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()}

    async def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
                   raw: bytes | None = None) -> tuple[int, Any, Any]:
        """Send a request; return (status, parsed JSON body, response headers)."""
        status, data, response_headers = await self.send(method, "/api/v2" + path, dict(headers or {}),
                                                         raw if raw is not None else
                                                         (json.dumps(body).encode() if body is not None else None))
        return status, (json.loads(data) if data else None), response_headers

    async def send(self, method: str, path: str, headers: dict[str, str], body: bytes | None
                   ) -> tuple[int, bytes, dict[str, str]]:
        """The raw sender (also what the auth matrix uses)."""
        if body is not None:
            headers.setdefault("Content-Type", "application/json")
        response = await self.http.request(method, self.base + path, headers=headers, data=body)
        data = await response.content()
        self.scanner.check_response(f"{method} {path}", data,
                                    issues_credentials=any(path.rstrip("/").endswith(p) for p in ISSUING))
        response_headers = {k.decode().lower(): v[-1].decode()
                            for k, v in response.headers.getAllRawHeaders()}
        return response.code, data, response_headers

    async def login(self, username: str, password: str) -> dict[str, Any]:
        """getToken; asserts success and returns the token pair."""
        status, body, _ = await self.call("POST", "/users/getToken", {"username": username, "password": password})
        self.assertEqual(status, 200, body)
        return body  # type: ignore[no-any-return]
