"""Failed-login throttling: per username and per address, 429 + Retry-After, time on a Clock."""
from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from dhis2gw.api.errors import ApiError
from dhis2gw.auth.throttle import LoginThrottle
from tests.auth.harness import AuthApiTestCase


class LoginThrottleTests(SynchronousTestCase):
    """The counter alone, driven by a Clock."""

    def test_locks_after_max_failures_and_unlocks_after_the_lockout(self) -> None:
        """The 3rd failure locks the username for 300 s; Retry-After counts down; then it is open again."""
        clock = Clock()
        throttle = LoginThrottle(clock, max_failures=3, lockout_seconds=300)
        for _ in range(3):
            throttle.check("alice", "10.0.0.1")
            throttle.record_failure("alice", "10.0.0.1")
        error = self.assertRaises(ApiError, throttle.check, "ALICE", "10.0.0.9")
        self.assertEqual((error.status, error.code, error.headers["Retry-After"]), (429, "too_many_attempts", "300"))
        clock.advance(120.5)
        error = self.assertRaises(ApiError, throttle.check, "alice", None)
        self.assertEqual(error.headers["Retry-After"], "180")
        clock.advance(180)
        throttle.check("alice", "10.0.0.1")

    def test_address_limit_covers_many_usernames(self) -> None:
        """One address guessing many usernames is locked after max_failures × address_factor failures."""
        throttle = LoginThrottle(Clock(), max_failures=2, lockout_seconds=60, address_factor=3)
        for i in range(6):
            throttle.check(f"user{i}", "10.0.0.7")
            throttle.record_failure(f"user{i}", "10.0.0.7")
        self.assertRaises(ApiError, throttle.check, "someone-else", "10.0.0.7")
        throttle.check("someone-else", "10.0.0.8")

    def test_success_resets_the_username_only(self) -> None:
        """A good login clears the username's failures but not the address's."""
        throttle = LoginThrottle(Clock(), max_failures=2, lockout_seconds=60, address_factor=2)
        throttle.record_failure("bob", "10.0.0.1")
        throttle.record_success("bob")
        throttle.record_failure("bob", "10.0.0.1")
        throttle.check("bob", None)  # 1 failure since the success: still open
        throttle.record_failure("carol", "10.0.0.1")
        throttle.record_failure("dave", "10.0.0.1")
        self.assertRaises(ApiError, throttle.check, None, "10.0.0.1")

    def test_old_failures_expire(self) -> None:
        """Failures older than the window do not add up to a lockout."""
        clock = Clock()
        throttle = LoginThrottle(clock, max_failures=2, lockout_seconds=60)
        throttle.record_failure("erin", None)
        clock.advance(61)
        throttle.record_failure("erin", None)
        throttle.check("erin", None)

    def test_memory_is_bounded(self) -> None:
        """No more than max_entries keys are kept."""
        throttle = LoginThrottle(Clock(), max_failures=5, lockout_seconds=60, max_entries=100)
        for i in range(1000):
            throttle.record_failure(f"u{i}", None)
        self.assertLessEqual(len(throttle._counters), 100)


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
