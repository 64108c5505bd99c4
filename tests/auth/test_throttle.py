"""Failed-login throttling: per username and per address, 429 + Retry-After, time on a Clock."""
from __future__ import annotations

from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase

from dhis2gw.auth.throttle import LoginThrottle, RedisLoginThrottle
from dhis2gw.errors import ApiError
from dhis2gw.queue.connection import RedisConnections
from dhis2gw.runtime.embedded import free_port
from tests.auth.harness import AuthApiTestCase
from tests.support.services import delete_redis_prefix, redis_prefix, services


class LoginThrottleTests(SynchronousTestCase):
    """The in-process budget alone, driven by a Clock."""

    def test_budget_is_taken_before_verification(self) -> None:
        """max_failures attempts pass the check; the next is 429 with Retry-After, whatever the password."""
        clock = Clock()
        throttle = LoginThrottle(clock, max_failures=3, lockout_seconds=300)
        for _ in range(3):
            throttle.take_now("alice", "10.0.0.1")
        error = self.assertRaises(ApiError, throttle.take_now, "ALICE", "10.0.0.1")
        self.assertEqual((error.status, error.code, error.headers["Retry-After"]), (429, "too_many_attempts", "300"))
        clock.advance(120.5)
        error = self.assertRaises(ApiError, throttle.take_now, "alice", "10.0.0.1")
        self.assertEqual(error.headers["Retry-After"], "180")
        clock.advance(180)
        throttle.take_now("alice", "10.0.0.1")

    def test_lockouts_double_up_to_the_cap(self) -> None:
        """Each new lockout of the same username+address doubles (300, 600, 1200, capped at 1000)."""
        clock = Clock()
        throttle = LoginThrottle(clock, max_failures=2, lockout_seconds=300, lockout_max_seconds=1000,
                                 address_factor=100)
        for expected in ("300", "600", "1000", "1000"):
            for _ in range(2):
                throttle.take_now("bob", "10.0.0.1")
            error = self.assertRaises(ApiError, throttle.take_now, "bob", "10.0.0.1")
            self.assertEqual(error.headers["Retry-After"], expected)
            clock.advance(int(expected))

    def test_lockout_is_per_username_and_address(self) -> None:
        """F6: an attacker at one address locks (admin, that address) only; the admin elsewhere logs in."""
        throttle = LoginThrottle(Clock(), max_failures=5, lockout_seconds=300)
        for _ in range(5):
            throttle.take_now("admin", "203.0.113.9")
        self.assertRaises(ApiError, throttle.take_now, "admin", "203.0.113.9")
        throttle.take_now("admin", "10.0.0.2")
        throttle.succeeded_now("admin", "10.0.0.2")

    def test_success_clears_the_username_budget_and_refunds_the_address(self) -> None:
        """A good password gives back what it took: honest logins never add up to a lockout."""
        throttle = LoginThrottle(Clock(), max_failures=2, lockout_seconds=60, address_factor=2)
        for _ in range(10):
            throttle.take_now("carol", "10.0.0.1")
            throttle.succeeded_now("carol", "10.0.0.1")
        throttle.take_now("dave", "10.0.0.1")
        throttle.take_now("erin", "10.0.0.1")
        throttle.take_now("frank", "10.0.0.1")
        throttle.take_now("gina", "10.0.0.1")  # the 4th guess from this address with no success: the last unit
        self.assertRaises(ApiError, throttle.take_now, "hank", "10.0.0.1")

    def test_old_attempts_expire(self) -> None:
        """Attempts older than the window do not add up to a lockout."""
        clock = Clock()
        throttle = LoginThrottle(clock, max_failures=2, lockout_seconds=60)
        throttle.take_now("erin", None)
        clock.advance(61)
        throttle.take_now("erin", None)
        clock.advance(1)
        throttle.take_now("erin", None)  # the 2nd in this window: it takes the last unit and locks
        self.assertRaises(ApiError, throttle.take_now, "erin", None)

    def test_memory_is_bounded(self) -> None:
        """No more than max_entries keys are kept."""
        throttle = LoginThrottle(Clock(), max_failures=5, lockout_seconds=60, max_entries=100)
        for i in range(1000):
            throttle.take_now(f"u{i}", None)
        self.assertLessEqual(len(throttle._counters), 100)


class RedisLoginThrottleTests(TestCase):
    """The shared budget on the real Redis, "now" on a Clock."""

    async def setUp(self) -> None:
        self.prefix = redis_prefix()
        self.addCleanup(delete_redis_prefix, self.prefix)
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        self.connections = []

    def make(self, max_failures: int = 5, **kw: Any) -> RedisLoginThrottle:
        """One "process": its own connections and fallback, the shared Redis keys."""
        svc = services()
        redis = RedisConnections(reactor, svc.redis_host, svc.redis_port, timeout=5)
        redis.startService()
        self.addCleanup(redis.stopService)
        return RedisLoginThrottle(redis, self.clock, self.prefix,
                                  LoginThrottle(self.clock, max_failures, 300, **kw))

    async def test_concurrent_attempts_share_one_budget_across_processes(self) -> None:
        """300 attempts at once, through two throttles (two processes) on one Redis: exactly 5 pass."""
        first, second = self.make(), self.make()
        attempts = [defer.Deferred.fromCoroutine((first if i % 2 else second).take("admin", "198.51.100.7"))
                    for i in range(300)]
        results = await defer.DeferredList(attempts, consumeErrors=True)
        passed = [ok for ok, _ in results if ok]
        refused = [f.value for ok, f in results if not ok]
        self.assertEqual(len(passed), 5)
        self.assertTrue(all(isinstance(e, ApiError) and e.status == 429 for e in refused))
        self.assertEqual(refused[0].headers["Retry-After"], "300")

    async def test_lock_expires_on_the_clock_and_doubles(self) -> None:
        """The lock ends when the injected clock passes it; the next one is twice as long."""
        throttle = self.make(max_failures=2, address_factor=100)
        for _ in range(2):
            await throttle.take("admin", "198.51.100.8")
        with self.assertRaises(ApiError):
            await throttle.take("admin", "198.51.100.8")
        await throttle.take("admin", "198.51.100.9")  # another address is not locked out
        self.clock.advance(301)
        for _ in range(2):
            await throttle.take("admin", "198.51.100.8")
        try:
            await throttle.take("admin", "198.51.100.8")
        except ApiError as e:
            self.assertEqual(e.headers["Retry-After"], "600")
        else:
            self.fail("the second lockout did not happen")
        await throttle.succeeded("admin", "198.51.100.8")  # the right password (on the admin's own session)
        await throttle.take("admin", "198.51.100.8")

    async def test_redis_down_falls_back_to_this_process(self) -> None:
        """With Redis unreachable logins are still throttled, per process."""
        dead = RedisConnections(reactor, "127.0.0.1", free_port(), timeout=0.2)
        throttle = RedisLoginThrottle(dead, self.clock, self.prefix, LoginThrottle(self.clock, 2, 300))
        await throttle.take("x", "198.51.100.10")
        await throttle.take("x", "198.51.100.10")
        with self.assertRaises(ApiError):
            await throttle.take("x", "198.51.100.10")


class ThrottledLoginApiTests(AuthApiTestCase):
    """Through the API: getToken and Basic share the throttle."""

    max_failures = 3
    lockout_seconds = 120

    async def test_get_token_locks_out_with_retry_after(self) -> None:
        """3 bad passwords → 429 with Retry-After, even for the right password, until the Clock passes it."""
        for _ in range(3):
            status, _, _ = await self.call("POST", "/users/getToken",
                                           {"username": "root-admin", "password": "Not-The-Password-1"})
            self.assertEqual(status, 401)
        status, body, headers = await self.call("POST", "/users/getToken",
                                                {"username": "root-admin", "password": self.admin_password})
        self.assertEqual((status, body["error"]["code"], headers["retry-after"]), (429, "too_many_attempts", "120"))
        status, _, headers = await self.call("GET", "/dummy/any", headers=self.basic("root-admin", self.admin_password))
        self.assertEqual((status, headers["retry-after"]), (429, "120"))
        self.clock.advance(121)
        await self.login("root-admin", self.admin_password)

    async def test_basic_failures_count_too(self) -> None:
        """Wrong Basic passwords count as failed logins and end in 429."""
        statuses = []
        for _ in range(4):
            status, _, _ = await self.call("GET", "/dummy/any", headers=self.basic("root-admin", "Wrong-Password-9"))
            statuses.append(status)
        self.assertEqual(statuses, [401, 401, 401, 429])


class ConcurrentGuessesApiTests(AuthApiTestCase):
    """F2 through the API: 300 guesses at once, the budget in Redis."""

    use_redis = True
    max_connections_per_address = 1000  # all 300 connections come from 127.0.0.1: let them all in

    async def test_300_concurrent_guesses_verify_at_most_the_budget(self) -> None:
        """300 getToken guesses sent together: at most max_failures (5) are verified (401), the rest 429."""
        body = {"username": "root-admin", "password": "Not-The-Password-1"}
        results = await defer.gatherResults([defer.Deferred.fromCoroutine(self.call("POST", "/users/getToken", body))
                                             for _ in range(300)])
        statuses = [status for status, _, _ in results]
        self.assertLessEqual(statuses.count(401), 5)
        self.assertEqual(statuses.count(401) + statuses.count(429), 300)
        status, _, headers = await self.call("POST", "/users/getToken",
                                             {"username": "root-admin", "password": self.admin_password})
        self.assertEqual((status, headers["retry-after"]), (429, "300"))

    async def test_concurrent_basic_guesses_share_the_budget(self) -> None:
        """40 Basic guesses with different passwords at once: at most 5 verified."""
        results = await defer.gatherResults([defer.Deferred.fromCoroutine(
            self.call("GET", "/dummy/any", headers=self.basic("root-admin", f"Wrong-Password-{i}")))
            for i in range(40)])
        self.assertLessEqual([status for status, _, _ in results].count(401), 5)


class TrustedProxyApiTests(AuthApiTestCase):
    """F6 behind a reverse proxy: the client's address, not the proxy's, keys the lockout."""

    trusted_proxies = ("127.0.0.1",)

    async def test_attacker_behind_the_proxy_cannot_lock_out_the_admin(self) -> None:
        """Guesses forwarded for 203.0.113.9 lock that address out; the admin forwarded for 10.0.0.2 logs in."""
        for _ in range(5):
            status, _, _ = await self.call("POST", "/users/getToken",
                                           {"username": "root-admin", "password": "Not-The-Password-1"},
                                           headers={"X-Forwarded-For": "203.0.113.9"})
            self.assertEqual(status, 401)
        status, _, _ = await self.call("POST", "/users/getToken",
                                       {"username": "root-admin", "password": self.admin_password},
                                       headers={"X-Forwarded-For": "203.0.113.9"})
        self.assertEqual(status, 429)
        # A client cannot pick its own address: the proxy appends the one it saw (rightmost wins).
        status, _, _ = await self.call("POST", "/users/getToken",
                                       {"username": "root-admin", "password": self.admin_password},
                                       headers={"X-Forwarded-For": "10.0.0.2, 203.0.113.9"})
        self.assertEqual(status, 429)
        status, body, _ = await self.call("POST", "/users/getToken",
                                          {"username": "root-admin", "password": self.admin_password},
                                          headers={"X-Forwarded-For": "10.0.0.2"})
        self.assertEqual(status, 200, body)


class UntrustedPeerApiTests(AuthApiTestCase):
    """Without trusted_proxies, X-Forwarded-For is ignored: an attacker cannot rotate addresses with it."""

    async def test_forwarded_for_from_an_untrusted_peer_is_ignored(self) -> None:
        """Five guesses each claiming another address still spend one address's budget."""
        for i in range(5):
            await self.call("POST", "/users/getToken", {"username": "root-admin", "password": "Not-The-Password-1"},
                            headers={"X-Forwarded-For": f"203.0.113.{i}"})
        status, _, _ = await self.call("POST", "/users/getToken",
                                       {"username": "root-admin", "password": self.admin_password},
                                       headers={"X-Forwarded-For": "198.51.100.1"})
        self.assertEqual(status, 429)


class ForwardedClientTests(SynchronousTestCase):
    """``forwarded_client``: which X-Forwarded-For hop is believed."""

    def test_hops(self) -> None:
        """Rightmost untrusted hop; nothing from an untrusted peer; malformed ends at the last trusted."""
        import ipaddress

        from dhis2gw.api.site import forwarded_client

        trusted = [ipaddress.ip_network("10.0.0.0/8")]
        self.assertEqual(forwarded_client("10.0.0.1", [b"1.2.3.4, 5.6.7.8"], trusted), "5.6.7.8")
        self.assertEqual(forwarded_client("10.0.0.1", [b"1.2.3.4", b"5.6.7.8, 10.0.0.9"], trusted), "5.6.7.8")
        self.assertEqual(forwarded_client("192.0.2.1", [b"5.6.7.8"], trusted), "192.0.2.1")
        self.assertEqual(forwarded_client("10.0.0.1", [b"5.6.7.8, junk"], trusted), "10.0.0.1")
        self.assertEqual(forwarded_client("10.0.0.1", [], trusted), "10.0.0.1")
        self.assertEqual(forwarded_client("10.0.0.1", [b"5.6.7.8"], []), "10.0.0.1")
