"""A per-destination circuit breaker (DESIGN.md §4).

closed → open after ``threshold`` consecutive destination-level failures (connection refused,
502/503/504, 401/403, 429): no claims for that destination. While open, a probe runs every
``probe_interval`` seconds; a successful probe makes it half-open, which lets ONE submission
through; that submission's success closes the breaker, a destination failure opens it again.
An auth failure (401/403) opens it at once, with reason ``auth``: retrying with bad credentials
only locks the DHIS2 account.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"


@dataclass(frozen=True)
class BreakerState:
    """A snapshot for /ready, /metrics and the queue API."""

    state: str
    reason: str | None
    since: float
    consecutive_failures: int
    opened_count: int


class CircuitBreaker:
    """Breaker state for one destination, on an injected clock."""

    def __init__(self, clock: IReactorTime, threshold: int = 5,
                 on_change: Callable[[CircuitBreaker], None] | None = None) -> None:
        self.clock = clock
        self.threshold = max(1, threshold)
        self.state = CLOSED
        self.reason: str | None = None
        self.since = clock.seconds()
        self.consecutive_failures = 0
        self.opened_count = 0
        self.trial_in_flight = False
        self._on_change = on_change
        self._waiters: list[defer.Deferred[None]] = []

    def snapshot(self) -> BreakerState:
        """The current state."""
        return BreakerState(self.state, self.reason, self.since, self.consecutive_failures, self.opened_count)

    # --- what the dispatcher asks --------------------------------------------------------
    def allows_claim(self) -> bool:
        """May a worker claim a submission now?"""
        if self.state == CLOSED:
            return True
        if self.state == HALF_OPEN and not self.trial_in_flight:
            return True
        return False

    def claimed(self) -> None:
        """A worker claimed a submission (in half-open it is the trial)."""
        if self.state == HALF_OPEN:
            self.trial_in_flight = True

    def wait_for_change(self) -> defer.Deferred[None]:
        """A Deferred that fires at the next state change."""
        d: defer.Deferred[None] = defer.Deferred()
        self._waiters.append(d)
        return d

    # --- what attempts and probes report ----------------------------------------------------
    def record_success(self) -> None:
        """DHIS2 answered at the application level (any outcome but a destination failure)."""
        self.consecutive_failures = 0
        self.trial_in_flight = False
        if self.state != CLOSED:
            self._set(CLOSED, None)

    def record_failure(self, reason: str) -> None:
        """A destination-level failure."""
        self.consecutive_failures += 1
        self.trial_in_flight = False
        if self.state == HALF_OPEN or reason == "auth" or self.consecutive_failures >= self.threshold:
            if self.state != OPEN:
                self.opened_count += 1
                self._set(OPEN, reason)
            elif self.reason != reason:
                self._set(OPEN, reason)

    def record_neutral(self) -> None:
        """An attempt ended without telling us about the destination (e.g. internal error)."""
        self.trial_in_flight = False
        self._notify()

    def probe_succeeded(self) -> None:
        """The probe reached DHIS2: let one submission through."""
        if self.state == OPEN:
            self._set(HALF_OPEN, self.reason)

    def force_open(self, reason: str) -> None:
        """Open by hand (e.g. a probe found bad credentials)."""
        self._set(OPEN, reason)

    # --- internals -----------------------------------------------------------------------
    def _set(self, state: str, reason: str | None) -> None:
        self.state = state
        self.reason = reason
        self.since = self.clock.seconds()
        if self._on_change is not None:
            self._on_change(self)
        self._notify()

    def _notify(self) -> None:
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            # A waiter may have been fired already by its owner (a worker woken for another
            # reason); firing it again would raise and leave the other waiters asleep.
            if not d.called:
                d.callback(None)
