"""RedisConnections: timeouts instead of hangs, real Redis otherwise."""
from __future__ import annotations

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from dhis2gw.queue.connection import RedisConnections, RedisUnavailable
from dhis2gw.runtime.embedded import free_port
from tests.support.backends import open_redis


class RedisConnectionTests(TestCase):
    """Commands against the real test Redis."""

    def setUp(self) -> None:
        self.redis, self.prefix = open_redis(self)

    async def test_commands_and_scripts(self) -> None:
        """Plain commands and Lua scripts round-trip; numbers are not converted."""
        key = f"{self.prefix}:k"
        await self.redis.call("SET", key, "42")
        self.assertEqual(await self.redis.call("GET", key), "42")
        result = await self.redis.eval("return redis.call('INCRBY', KEYS[1], ARGV[1])", [key], [8])
        self.assertEqual(result, 50)
        self.assertTrue(await self.redis.ping())


class StoppedRedisTests(TestCase):
    """A Redis that does not answer: calls time out on the injected clock instead of hanging."""

    async def test_call_times_out(self) -> None:
        """With nothing listening, a call fails with RedisUnavailable once the clock passes the timeout."""
        clock = Clock()
        redis = RedisConnections(clock, "127.0.0.1", free_port(), timeout=2.0)
        redis.startService()
        self.addCleanup(redis.stopService)
        d = defer.Deferred.fromCoroutine(redis.call("GET", "x"))
        self.assertNoResult(d)
        clock.advance(1.9)
        self.assertNoResult(d)
        clock.advance(0.2)
        self.failureResultOf(d, RedisUnavailable)
        ping = defer.Deferred.fromCoroutine(redis.ping())
        clock.advance(2.1)
        self.assertIs(self.successResultOf(ping), False)
