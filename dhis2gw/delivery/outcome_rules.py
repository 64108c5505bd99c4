"""Ambiguous failures are judged by the destination's health, not by the attempt alone.

A *suspect* attempt (``OutcomeKind.SUSPECT``: a 500 with a DHIS2 body, a read timeout of the
headers or the body, a connection lost after the request was sent, an unexpected transport
error) is either this payload's fault (a *poison* payload that breaks DHIS2 every time) or the
destination's (DHIS2's database down, a hung DHIS2, a proxy resetting every connection). The
attempt alone cannot tell; the destination's health can. The rule, in order:

1. **Read back first** (``timeout`` and ``connection_lost`` only, where DHIS2 may have committed
   the payload before the answer was lost): the kind asks DHIS2 whether the data is there
   (aggregate: ``GET /api/dataValueSets`` for the data set, period, org unit and attribute option
   combo; tracker: the objects by their UIDs). Every value there with the value sent → the
   submission is ``delivered`` (event ``confirmed_by_read_back``), without a second import; the
   read-back answering proves DHIS2 healthy. Missing data, or a read-back that fails, goes on.
2. **The breaker counts it** like a destination failure, under the reason that names the shape
   (``server_error``, ``timeout``, ``connection_lost``).
3. **Healthy for other work?** DHIS2 is *shown healthy* when an answer at the application level
   (a delivered, partial or rejected import, a successful read-back or health check) came to a
   request that **started after this attempt started**. Such an answer seen already is enough;
   otherwise the health check runs now (``GET /api/me?fields=id``, authenticated, touches the
   database, same timeouts as a delivery; one check at a time per destination, shared by every
   attempt that started before it). A successful check also tells the breaker (it closes).
4. **Shown healthy → the payload is suspected**: a retry is spent (``retrying`` with backoff, or
   ``failed`` once ``max_retries`` are spent): a poison payload ends ``failed`` within seconds
   while the others flow.
   **Not shown healthy → the destination is suspected**: the submission goes back to the queue
   with a ``destination_suspect`` event naming the reason, and no retry is counted; the breaker
   opens after ``breaker_threshold`` such failures and its probe (the same health check) keeps
   it open until DHIS2 can do work again.

A half-open breaker lets one submission through; when it is suspect the breaker re-opens, and a
retry is spent only if the health check then shows DHIS2 healthy (which also closes it).

Requests are ordered by a per-destination sequence number taken when they start, not by clock
time, so the rule is exact on a ``task.Clock`` where many things happen at the same instant.
"""
from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable

from twisted.internet import defer

from dhis2gw.dhis2.outcome import FINAL_KINDS, Outcome, OutcomeKind

#: Suspect reasons after which DHIS2 may have committed the payload: read it back first.
READ_BACK_REASONS = frozenset({"timeout", "connection_lost"})

#: The breaker's reasons: the shape of the failure, for /ready, /metrics and the admin app.
BREAKER_REASONS = ("server_error", "timeout", "connection_lost", "unavailable", "connection_refused", "dns",
                   "tls", "auth", "not_found", "rate_limited")

_REASON_MAP = {
    "connect_timeout": "timeout",
    "connect_error": "connection_refused",
    "connection_reset": "connection_lost",
    "unexpected_error": "connection_lost",
    "http_502": "unavailable",
    "http_503": "unavailable",
    "http_504": "unavailable",
    "not_json": "unavailable",
    "redirect": "not_found",
}


def breaker_reason(outcome: Outcome) -> str:
    """The breaker's name for the shape of a destination-level or suspect failure."""
    reason = outcome.reason or outcome.kind.value
    if reason in BREAKER_REASONS:
        return reason
    if reason in _REASON_MAP:
        return _REASON_MAP[reason]
    if reason.startswith("http_5"):
        return "unavailable"
    return reason


class Verdict(enum.Enum):
    """What a suspect attempt comes to."""

    SPEND_RETRY = "spend_retry"  # DHIS2 was shown healthy for other work: this payload is suspected
    REQUEUE = "requeue"          # not shown healthy: back to the queue, no retry counted


def shows_health(outcome: Outcome) -> bool:
    """Does this answer show DHIS2 healthy (it did work at the application level)?"""
    return outcome.kind in FINAL_KINDS


class DestinationHealth:
    """What one destination's deliveries and health checks showed about its health.

    ``start()`` hands out the sequence number of a request that starts now; ``healthy(seq)``
    records an answer at the application level to the request numbered ``seq``.
    ``shown_healthy_after(seq)`` tells whether a request that started after ``seq`` was answered so.
    """

    def __init__(self, check: Callable[[], Awaitable[Outcome]]) -> None:
        self._check = check
        self._seq = 0
        self.last_healthy_seq = -1
        self.checks = 0
        self._in_flight: tuple[int, defer.Deferred[Outcome]] | None = None

    def start(self) -> int:
        """The sequence number of a request starting now."""
        self._seq += 1
        return self._seq

    def healthy(self, seq: int) -> None:
        """The request numbered ``seq`` got an answer at the application level."""
        self.last_healthy_seq = max(self.last_healthy_seq, seq)

    def observe(self, seq: int, outcome: Outcome) -> None:
        """Record what the request numbered ``seq`` came to."""
        if shows_health(outcome):
            self.healthy(seq)

    def shown_healthy_after(self, seq: int) -> bool:
        """True when a request that started after ``seq`` was answered at the application level."""
        return self.last_healthy_seq > seq

    async def check_after(self, seq: int) -> Outcome:
        """The health check's outcome, from a check that started after ``seq`` (shared when one runs)."""
        if self._in_flight is not None and self._in_flight[0] > seq:
            return await _relay(self._in_flight[1])
        check_seq = self.start()
        d = defer.Deferred.fromCoroutine(self._run_check(check_seq))
        self._in_flight = (check_seq, d)
        try:
            return await _relay(d)
        finally:
            if self._in_flight is not None and self._in_flight[1] is d:
                self._in_flight = None

    async def _run_check(self, seq: int) -> Outcome:
        self.checks += 1
        try:
            outcome = await self._check()
        except Exception as e:  # noqa: BLE001 - a check that cannot run shows nothing healthy
            outcome = Outcome(OutcomeKind.SUSPECT, "unexpected_error", message=f"{type(e).__name__}: {e}")
        if outcome.kind is OutcomeKind.DELIVERED:
            self.healthy(seq)
        return outcome

    async def check(self) -> Outcome:
        """A health check now (the breaker's probe); shares the one in flight, if any."""
        if self._in_flight is not None:
            return await _relay(self._in_flight[1])
        return await self.check_after(self._seq)

    async def judge(self, seq: int) -> tuple[Verdict, Outcome | None]:
        """The verdict on a suspect attempt that started as ``seq`` (module docstring, step 3–4).

        Returns the verdict and the health check's outcome when one was needed.
        """
        if self.shown_healthy_after(seq):
            return Verdict.SPEND_RETRY, None
        check = await self.check_after(seq)
        if check.kind is OutcomeKind.DELIVERED:
            return Verdict.SPEND_RETRY, check
        return Verdict.REQUEUE, check


def _relay(d: defer.Deferred[Outcome]) -> defer.Deferred[Outcome]:
    """A Deferred that fires with ``d``'s result without sharing ``d``'s callback chain (``d`` never fails)."""
    out: defer.Deferred[Outcome] = defer.Deferred()

    def fire(result: Outcome) -> Outcome:
        out.callback(result)
        return result

    d.addCallback(fire)
    return out
