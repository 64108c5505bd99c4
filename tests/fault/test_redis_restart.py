"""Fault test: Redis stopped under the gateway's connections, then started again."""
from __future__ import annotations

import shutil
import signal
import tempfile

from twisted.internet import reactor, threads
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from dhis2gw.queue.connection import RedisConnections, RedisUnavailable
from dhis2gw.runtime.embedded import EmbeddedRedis


class RedisRestartTests(TestCase):
    """A private redis-server is killed and restarted on the same port."""

    timeout = 60

    def setUp(self) -> None:
        self.state = tempfile.mkdtemp(prefix="dhis2gw-redisfault-")
        self.addCleanup(shutil.rmtree, self.state, True)
        self.server = EmbeddedRedis(self.state, persist=False)
        self.server.start()
        self.addCleanup(self.server.stop)
        self.redis = RedisConnections(reactor, self.server.host, self.server.port, timeout=0.5)
        self.redis.startService()
        self.addCleanup(self.redis.stopService)

    async def test_times_out_while_down_and_recovers(self) -> None:
        """While Redis is down calls fail within the timeout; after restart they succeed."""
        await self.redis.call("SET", "k", "v")
        self.server.stop(signal.SIGKILL)
        started = reactor.seconds()
        with self.assertRaises(RedisUnavailable):
            await self.redis.call("GET", "k")
        self.assertLess(reactor.seconds() - started, 3)
        await threads.deferToThread(self.server.start)
        for _ in range(100):
            try:
                await self.redis.call("SET", "k", "again")
                break
            except RedisUnavailable:
                await deferLater(reactor, 0.1, lambda: None)
        self.assertEqual(await self.redis.call("GET", "k"), "again")
