"""CircuitBreaker state machine on a Clock."""
from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from dhis2gw.delivery.breaker import CircuitBreaker


class CircuitBreakerTests(SynchronousTestCase):
    """closed → open → half-open → closed, and waiters."""

    def test_opens_after_threshold_and_closes_after_trial(self) -> None:
        """N destination failures open it; a probe half-opens it; one success closes it."""
        breaker = CircuitBreaker(Clock(), threshold=3)
        for _ in range(2):
            breaker.record_failure("connection_refused")
        self.assertEqual(breaker.state, "closed")
        breaker.record_failure("connection_refused")
        self.assertEqual((breaker.state, breaker.reason, breaker.opened_count), ("open", "connection_refused", 1))
        self.assertFalse(breaker.allows_claim())
        breaker.probe_succeeded()
        self.assertTrue(breaker.allows_claim())
        breaker.claimed()
        self.assertFalse(breaker.allows_claim())  # only one trial in half-open
        breaker.record_success()
        self.assertEqual(breaker.state, "closed")

    def test_auth_failure_opens_at_once(self) -> None:
        """A 401/403 opens the breaker on the first occurrence."""
        breaker = CircuitBreaker(Clock(), threshold=5)
        breaker.record_failure("auth")
        self.assertEqual((breaker.state, breaker.reason), ("open", "auth"))

    def test_waiter_already_fired_by_its_owner_does_not_break_notification(self) -> None:
        """A worker woken for another reason fires its own waiter; the next change still wakes the others."""
        breaker = CircuitBreaker(Clock(), threshold=1)
        breaker.record_failure("connection_refused")
        stale = breaker.wait_for_change()
        stale.callback(None)  # the worker's wake() fired it
        fresh = breaker.wait_for_change()
        breaker.probe_succeeded()  # must not raise AlreadyCalledError
        self.assertEqual(self.successResultOf(fresh), None)
        self.assertEqual(breaker.state, "half_open")
