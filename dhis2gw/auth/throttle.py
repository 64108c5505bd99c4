"""Failed-login throttling per username and per client address.

After ``max_failures`` failures for one username (or ``address_factor`` times as many from one
address, since many honest users can share a NAT address) within ``window`` seconds, further
attempts are refused with 429 + ``Retry-After`` until the lockout ends, even with the right
password, so guessing cannot continue. Memory is bounded: stale entries are pruned and at most
``max_entries`` keys are kept.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from twisted.internet.interfaces import IReactorTime

from dhis2gw.api.errors import ApiError


@dataclass
class _Counter:
    failures: int
    first_at: float
    locked_until: float = 0.0


class LoginThrottle:
    """Counts failed logins and says when to refuse.

    :param clock: the injected clock.
    :param max_failures: failures per username before the lockout.
    :param lockout_seconds: how long a lockout lasts (also the counting window).
    """

    def __init__(self, clock: IReactorTime, max_failures: int, lockout_seconds: int,
                 address_factor: int = 4, max_entries: int = 100_000) -> None:
        self.clock = clock
        self.max_failures = max_failures
        self.lockout_seconds = lockout_seconds
        self.address_factor = address_factor
        self.max_entries = max_entries
        self._counters: dict[str, _Counter] = {}
        self.locked_refusals = 0

    @staticmethod
    def _keys(username: Optional[str], address: Optional[str]) -> list[tuple[str, int]]:
        keys = []
        if username:
            keys.append(("u:" + username.strip().lower(), 1))
        if address:
            keys.append(("a:" + address, 0))
        return keys

    def _limit(self, is_user: int) -> int:
        return self.max_failures if is_user else self.max_failures * self.address_factor

    def check(self, username: Optional[str], address: Optional[str]) -> None:
        """Raise 429 with Retry-After when the username or the address is locked out."""
        now = self.clock.seconds()
        wait = 0.0
        for key, _ in self._keys(username, address):
            counter = self._counters.get(key)
            if counter is not None and counter.locked_until > now:
                wait = max(wait, counter.locked_until - now)
        if wait > 0:
            self.locked_refusals += 1
            seconds = max(1, math.ceil(wait))
            raise ApiError(429, "too_many_attempts",
                           "too many failed logins; try again later", {"retry_after": seconds},
                           headers={"Retry-After": str(seconds)})

    def record_failure(self, username: Optional[str], address: Optional[str]) -> None:
        """Count one failed login."""
        now = self.clock.seconds()
        if len(self._counters) >= self.max_entries:
            self._prune(now)
        for key, is_user in self._keys(username, address):
            counter = self._counters.get(key)
            if counter is None or now - counter.first_at > self.lockout_seconds:
                counter = self._counters[key] = _Counter(0, now)
            counter.failures += 1
            if counter.failures >= self._limit(is_user):
                counter.locked_until = now + self.lockout_seconds
                counter.failures = 0
                counter.first_at = now

    def record_success(self, username: Optional[str]) -> None:
        """Forget the username's failures (not the address's: one good account must not reset them)."""
        for key, _ in self._keys(username, None):
            self._counters.pop(key, None)

    def _prune(self, now: float) -> None:
        stale = [k for k, c in self._counters.items()
                 if c.locked_until <= now and now - c.first_at > self.lockout_seconds]
        for k in stale:
            del self._counters[k]
        while len(self._counters) >= self.max_entries:  # still full: drop the oldest
            del self._counters[next(iter(self._counters))]
