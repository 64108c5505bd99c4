"""Run a whole gateway in-process against the test PostgreSQL and Redis."""
from __future__ import annotations

from typing import Any, Optional

import treq
from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase

from dhis2gw.config import load_config
from dhis2gw.embedded import free_port
from dhis2gw.tap import Gateway, build_gateway
from tests.support.services import delete_redis_prefix, migrated_database, redis_prefix, test_environ


class GatewayTestCase(TestCase):
    """A TestCase whose setUp starts a gateway on 127.0.0.1:<free port>.

    ``self.gateway`` is the wired ``Gateway``, ``self.url(path)`` an absolute URL on it.
    Override ``extra_environ`` to change configuration keys.
    """

    role = "all"
    extra_environ: dict[str, str] = {}

    def config_environ(self) -> dict[str, str]:
        env = test_environ(self.dsn, self.prefix, DHIS2GW_SERVER_PORT=str(free_port()))
        env.update(self.extra_environ)
        return env

    async def start_gateway(self) -> Gateway:
        self.dsn = migrated_database()
        self.prefix = redis_prefix()
        self.addCleanup(delete_redis_prefix, self.prefix)
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

    async def get_json(self, path: str, headers: Optional[dict[str, Any]] = None) -> tuple[int, Any]:
        response = await treq.get(self.url(path), headers=headers, persistent=False)
        return response.code, await response.json()
