"""Run a whole gateway in-process against the test PostgreSQL and Redis."""
from __future__ import annotations

from typing import Any

import treq
from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase

from dhis2gw.config import load_config
from dhis2gw.runtime.embedded import free_port
from dhis2gw.wiring.root import Gateway, build_gateway
from tests.support.services import delete_redis_prefix, migrated_database, redis_prefix, test_environ


class GatewayTestCase(TestCase):
    """A TestCase whose setUp starts a gateway on 127.0.0.1:<free port>.

    ``self.gateway`` is the wired ``Gateway``, ``self.url(path)`` an absolute URL on it.
    Override ``extra_environ`` to change configuration keys.
    """

    role = "all"
    extra_environ: dict[str, str] = {}
    #: Start an in-process DHIS2 simulator (``self.sim``, ``self.sim_server``) as destination ``main``.
    with_simulator = False
    sim_version = "2.40"

    def config_environ(self) -> dict[str, str]:
        env = test_environ(self.dsn, self.prefix, DHIS2GW_SERVER_PORT=str(free_port()))
        if self.with_simulator:
            env.update({"dhis2_base_url": self.sim_server.base_url, "dhis2_user": "admin",
                        "dhis2_password": "district", "DHIS2GW_BACKOFF_BASE": "0.05",
                        "DHIS2GW_BACKOFF_CAP": "0.2", "DHIS2GW_BREAKER_PROBE_INTERVAL": "0.2"})
        env.update(self.extra_environ)
        return env

    async def start_simulator(self) -> None:
        from dhis2gw.sim import Metadata, Simulator, SimulatorServer

        self.sim = Simulator(self.sim_version, clock=reactor, metadata=Metadata.load_default())
        self.sim_server = SimulatorServer(self.sim, reactor)
        await self.sim_server.start(0)
        self.addCleanup(self.sim_server.stop)

    async def start_gateway(self) -> Gateway:
        self.dsn = migrated_database()
        self.prefix = redis_prefix()
        self.addCleanup(delete_redis_prefix, self.prefix)
        if self.with_simulator:
            await self.start_simulator()
        self.config = load_config(None, self.config_environ())
        self.gateway = build_gateway(self.config, reactor, self.role)
        self.gateway.service.startService()
        self.addCleanup(self.gateway.service.stopService)
        if self.gateway.listener is not None:
            port = await self.gateway.listener.listening
            self.base = f"http://127.0.0.1:{port.getHost().port}"
        else:
            await self.gateway.db.started
        return self.gateway

    def setUp(self) -> defer.Deferred[Any]:
        return defer.Deferred.fromCoroutine(self.start_gateway())

    def url(self, path: str) -> str:
        return self.base + path

    async def get_json(self, path: str, headers: dict[str, Any] | None = None) -> tuple[int, Any]:
        response = await treq.get(self.url(path), headers=headers, persistent=False)
        return response.code, await response.json()

    async def request_json(self, method: str, path: str, body: Any = None, token: str | None = None,
                           headers: dict[str, str] | None = None) -> tuple[int, Any]:
        """Send JSON (Bearer ``token`` if given) and return (status, parsed body)."""
        import json

        sent = {"Content-Type": "application/json"}
        if token:
            sent["Authorization"] = f"Bearer {token}"
        sent.update(headers or {})
        data = json.dumps(body).encode() if body is not None else None
        response = await treq.request(method, self.url(path), headers=sent, data=data, persistent=False)
        raw = await response.content()
        return response.code, (json.loads(raw) if raw else None)

    async def user_token(self, username: str, role: str, password: str = "a-Long-enough-pass-1",
                         source_name: str | None = None) -> str:
        """Create a user (if needed) and return a Bearer access token for it."""
        from dhis2gw.runtime.cli_users import create_user_command

        try:
            await create_user_command(self.gateway.db, username, role, password)
        except ValueError:
            pass  # already exists
        if source_name is not None:
            await self.gateway.db.execute("test.source", "UPDATE users SET source_name = %s WHERE lower(username)"
                                          " = lower(%s)", (source_name, username))
        code, body = await self.request_json("POST", "/api/v2/users/getToken",
                                             {"username": username, "password": password})
        assert code == 200, body
        return str(body["access_token"])
