"""Login throttling: a budget of password verifications per username+address and per address.

Issue 16 (F2, F6). The budget is taken **before** the password is verified, atomically, so
concurrent guesses cannot all slip past a check made while the others are still verifying:
at most ``max_failures`` verifications per username+address (and ``max_failures ×
address_factor`` per address, since many honest users can share a NAT address) run per window,
however many arrive at once. A good password refunds what it took (the username+address
counter is cleared, the address counter gives its unit back), so honest traffic never adds up.

When a budget is spent, that scope is locked: further attempts get 429 with ``Retry-After``
(the seconds until the lock ends) even with the right password. Each new lockout of the same
scope doubles the last, from ``lockout_seconds`` up to ``lockout_max_seconds``; a success
clears the username+address level. The lock is per username **and address**: an attacker at
one address cannot lock the admin out at another (with ``server.trusted_proxies`` the address
is the client's, not the reverse proxy's).

``RedisLoginThrottle`` keeps the counters in Redis (one Lua script per attempt), so every
gateway process — ``server.workers``, several hosts — shares one budget and a restart clears
nothing. If Redis is down (not connected, connection refused), it falls back to the in-process
``LoginThrottle`` (same rules, per process) with a warning: logins keep working during a Redis
outage. If Redis is connected but does not answer in time, the attempt is refused with 503 and
``Retry-After: 1`` instead: the script may still have run, and a loaded gateway must not become
a way around the shared budget.

Times come from the injected clock (passed to the script as "now"), so tests drive lockouts
with a ``Clock``; Redis TTLs only garbage-collect idle keys.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from dhis2gw.errors import ApiError


def locked_error(wait_seconds: float) -> ApiError:
    """The 429 of a locked scope, with ``Retry-After`` in whole seconds."""
    seconds = max(1, math.ceil(wait_seconds))
    return ApiError(429, "too_many_attempts", "too many failed logins; try again later", {"retry_after": seconds},
                    headers={"Retry-After": str(seconds)})


def _scopes(username: str | None, address: str | None, max_failures: int,
            address_factor: int) -> list[tuple[str, int]]:
    """(key, limit) of each budget an attempt takes; the first is the one a success clears."""
    user = hashlib.sha256((username or "").strip().lower().encode("utf-8")).hexdigest()[:32]
    if address:
        return [(f"ua:{user}|{address}", max_failures), (f"a:{address}", max_failures * address_factor)]
    return [(f"u:{user}", max_failures)]


@dataclass
class _Counter:
    taken: int
    first_at: float
    level: int = 0
    locked_until: float = 0.0


class LoginThrottle:
    """The budget in this process's memory (see module docstring).

    :param clock: the injected clock.
    :param max_failures: verifications per username+address per window before a lockout.
    :param lockout_seconds: the first lockout (also the counting window).
    :param lockout_max_seconds: the longest lockout.
    """

    def __init__(self, clock: IReactorTime, max_failures: int, lockout_seconds: int,
                 address_factor: int = 4, max_entries: int = 100_000, lockout_max_seconds: int = 3600) -> None:
        self.clock = clock
        self.max_failures = max_failures
        self.lockout_seconds = lockout_seconds
        self.lockout_max_seconds = max(lockout_max_seconds, lockout_seconds)
        self.address_factor = address_factor
        self.max_entries = max_entries
        self._counters: dict[str, _Counter] = {}
        self.locked_refusals = 0

    def _duration(self, level: int) -> float:
        return float(min(self.lockout_seconds * 2 ** min(level - 1, 30), self.lockout_max_seconds))

    def take_now(self, username: str | None, address: str | None) -> None:
        """Take one verification from every budget, or raise 429 when one is locked."""
        now = self.clock.seconds()
        scopes = _scopes(username, address, self.max_failures, self.address_factor)
        wait = max([c.locked_until - now for k, _ in scopes if (c := self._counters.get(k)) is not None] + [0.0])
        if wait > 0:
            self.locked_refusals += 1
            raise locked_error(wait)
        if len(self._counters) >= self.max_entries:
            self._prune(now)
        for key, limit in scopes:
            counter = self._counters.get(key)
            if counter is None:
                counter = self._counters[key] = _Counter(0, now)
            if now - counter.first_at > self.lockout_seconds:
                counter.taken, counter.first_at = 0, now
            counter.taken += 1
            if counter.taken >= limit:
                counter.level += 1
                counter.locked_until = now + self._duration(counter.level)
                counter.taken, counter.first_at = 0, now

    def succeeded_now(self, username: str | None, address: str | None) -> None:
        """A good password: clear the username+address budget, give the address its unit back."""
        scopes = _scopes(username, address, self.max_failures, self.address_factor)
        self._counters.pop(scopes[0][0], None)
        for key, _ in scopes[1:]:
            counter = self._counters.get(key)
            if counter is not None and counter.taken > 0:
                counter.taken -= 1

    async def take(self, username: str | None, address: str | None) -> None:
        self.take_now(username, address)

    async def succeeded(self, username: str | None, address: str | None) -> None:
        self.succeeded_now(username, address)

    def _prune(self, now: float) -> None:
        window = self.lockout_max_seconds
        stale = [k for k, c in self._counters.items() if c.locked_until <= now and now - c.first_at > window]
        for k in stale:
            del self._counters[k]
        while len(self._counters) >= self.max_entries:  # still full: drop the oldest
            del self._counters[next(iter(self._counters))]


# KEYS: one hash per budget.  ARGV: now_ms, window_ms, base_ms, cap_ms, keep_ms, limit_1 .. limit_n.
# Returns {1, 0} when taken, {0, wait_ms} when a budget is locked (nothing taken then).
TAKE_SCRIPT = """
local now = tonumber(ARGV[1])
local window, base, cap, keep = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local wait = 0
for i, key in ipairs(KEYS) do
  local u = tonumber(redis.call('HGET', key, 'until') or '0')
  if u - now > wait then wait = u - now end
end
if wait > 0 then return {0, math.ceil(wait)} end
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[5 + i])
  local h = redis.call('HMGET', key, 'n', 'first', 'level')
  local n, first, level = tonumber(h[1] or '0'), tonumber(h[2] or ARGV[1]), tonumber(h[3] or '0')
  if now - first > window then n = 0; first = now end
  n = n + 1
  if n >= limit then
    level = level + 1
    local d = base * math.pow(2, math.min(level - 1, 30))
    if d > cap then d = cap end
    redis.call('HSET', key, 'until', string.format('%d', now + d))
    n = 0; first = now
  end
  redis.call('HSET', key, 'n', n, 'first', string.format('%d', first), 'level', level)
  redis.call('PEXPIRE', key, keep)
end
return {1, 0}
"""

# KEYS[1]: the budget a success clears; KEYS[2..]: budgets that get their unit back.
SUCCEEDED_SCRIPT = """
redis.call('DEL', KEYS[1])
for i = 2, #KEYS do
  local n = tonumber(redis.call('HGET', KEYS[i], 'n') or '0')
  if n > 0 then redis.call('HINCRBY', KEYS[i], 'n', -1) end
end
return 1
"""


class RedisLoginThrottle:
    """The budget in Redis, shared by every gateway process (see module docstring).

    :param redis: ``dhis2gw.queue.connection.RedisConnections``.
    :param prefix: the queue key prefix (keys are ``{prefix}:login:…``).
    :param fallback: the in-process throttle used while Redis does not answer.
    """

    log = Logger()

    def __init__(self, redis: Any, clock: IReactorTime, prefix: str, fallback: LoginThrottle,
                 timeout: float = 2.0) -> None:
        self.redis = redis
        self.clock = clock
        self.prefix = prefix
        self.fallback = fallback
        self.timeout = timeout

    @property
    def locked_refusals(self) -> int:
        return self.fallback.locked_refusals

    def _keys(self, username: str | None, address: str | None) -> tuple[list[str], list[int]]:
        f = self.fallback
        scopes = _scopes(username, address, f.max_failures, f.address_factor)
        return [f"{self.prefix}:login:{key}" for key, _ in scopes], [limit for _, limit in scopes]

    async def take(self, username: str | None, address: str | None) -> None:
        """Take one verification from every budget atomically, or raise 429 (Retry-After)."""
        from dhis2gw.queue.connection import RedisUnavailable

        f = self.fallback
        keys, limits = self._keys(username, address)
        keep = 2 * max(f.lockout_max_seconds, f.lockout_seconds) * 1000
        try:
            taken, wait_ms = await self.redis.eval(
                TAKE_SCRIPT, keys, [int(self.clock.seconds() * 1000), f.lockout_seconds * 1000,
                                    f.lockout_seconds * 1000, f.lockout_max_seconds * 1000, keep, *limits],
                timeout=self.timeout)
        except RedisUnavailable as e:
            if isinstance(e.__cause__, defer.TimeoutError):
                raise ApiError(503, "login_unavailable", "the login service is busy; try again",
                               headers={"Retry-After": "1"}) from None
            self.log.warn("Login throttle: Redis unavailable ({error}); counting in this process", error=e)
            f.take_now(username, address)
            return
        if not int(taken):
            f.locked_refusals += 1
            raise locked_error(int(wait_ms) / 1000.0)

    async def succeeded(self, username: str | None, address: str | None) -> None:
        """A good password: clear the username+address budget, refund the address's unit."""
        from dhis2gw.queue.connection import RedisUnavailable

        keys, _ = self._keys(username, address)
        self.fallback.succeeded_now(username, address)
        try:
            await self.redis.eval(SUCCEEDED_SCRIPT, keys, [], timeout=self.timeout)
        except RedisUnavailable as e:
            self.log.warn("Login throttle: Redis unavailable ({error}) recording a success", error=e)
