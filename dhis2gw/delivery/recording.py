"""How one attempt's outcome is written down: the submission's status, the breaker, the Redis move.

``plan_recording`` turns an outcome into a ``Recording``, a value computed before anything is
written, following the outcome rules (DESIGN.md §4):

- delivered / partial / rejected are final: recorded, the id acked, the breaker told success;
- a job-level failure (``RETRY``) spends a retry: ``retrying`` with a backoff delay, or ``failed``
  once the retries are spent (then acked); an HTTP answer counts as DHIS2 being up;
- a suspect failure already judged by the worker goes back to ready without spending anything;
- a destination-level failure goes back to ready (a 429 after its ``Retry-After``) and feeds the
  breaker.

The worker writes the recording with the lease token (``SubmissionStore.record``) and makes the
Redis move only when the store accepted it: an attempt that lost its lease leaves nothing
behind, not even a Redis call created and never made.
"""
from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

from dhis2gw.delivery.outcome_rules import breaker_reason
from dhis2gw.delivery.retry import RetryPolicy
from dhis2gw.dhis2.outcome import Outcome, OutcomeKind
from dhis2gw.queue.feed import SubmissionQueue
from dhis2gw.storage.statuses import FAILED, FINAL_STATUS, QUEUED, RETRYING
from dhis2gw.storage.submissions import utc


@dataclass(frozen=True)
class Recording:
    """What recording one outcome does.

    :param status: the submission's new status.
    :param fields: the other keyword arguments of ``SubmissionStore.record``.
    :param queue_move: what then happens to the id in Redis: ``ack``, ``release`` or ``delay``
        (until ``due``).
    :param breaker: what the breaker is told: ``success``, ``neutral``, ``failure`` (with
        ``breaker_reason``) or nothing (None).
    :param breaker_first: tell the breaker before writing, so it hears about DHIS2 even when
        PostgreSQL refuses the write; a final answer is told only once it is recorded.
    """

    status: str
    fields: dict[str, Any]
    queue_move: str
    due: float | None = None
    breaker: str | None = None
    breaker_reason: str = ""
    breaker_first: bool = True

    def tell(self, breaker: Any) -> None:
        """Give ``breaker`` (a ``CircuitBreaker`` or ``NullBreaker``) this outcome's observation."""
        if self.breaker == "success":
            breaker.record_success()
        elif self.breaker == "neutral":
            breaker.record_neutral()
        elif self.breaker == "failure":
            breaker.record_failure(self.breaker_reason)

    def move(self, queue: SubmissionQueue, destination: str, sid: int) -> Awaitable[None]:
        """Start the Redis move for submission ``sid`` (await the result)."""
        if self.queue_move == "ack":
            return queue.ack(destination, sid)
        if self.queue_move == "delay":
            assert self.due is not None
            return queue.delay(destination, sid, self.due)
        return queue.release(destination, sid)


def plan_recording(row: dict[str, Any], outcome: Outcome, *, destination: str, duration: float,
                   policy: RetryPolicy, now: float, save_response: bool, detail: str | None = None,
                   event: str | None = None) -> Recording:
    """The ``Recording`` of ``outcome`` for the attempt of ``row`` (see the module docstring).

    ``detail`` and ``event`` refine the event written (a batch, a read-back's verdict); ``now``
    is the clock's time, from which backoff and ``Retry-After`` delays are counted.
    """
    common: dict[str, Any] = dict(attempt=row["attempts"], destination=destination,
                                  http_status=outcome.http_status, duration_ms=int(duration * 1000))
    kind = outcome.kind
    error = outcome.message or outcome.reason
    if kind in FINAL_STATUS:
        status = FINAL_STATUS[kind]
        return Recording(status, dict(
            event=event or status, response=outcome.body, keep_response=save_response, detail=detail,
            import_count=outcome.import_count or outcome.stats, conflicts=_conflicts(outcome),
            error=None if kind is OutcomeKind.DELIVERED else error, **common),
            "ack", breaker="success", breaker_first=False)
    if kind is OutcomeKind.RETRY:
        failures = row["job_failures"] + 1
        seen = "success" if outcome.http_status else "neutral"
        if policy.exhausted(failures):
            return Recording(FAILED, dict(
                event=FAILED, spent_retry=True, response=outcome.body, keep_response=save_response, error=error,
                detail="; ".join(x for x in (detail, f"retries exhausted ({failures - 1} retries)") if x),
                **common), "ack", breaker=seen)
        due = now + policy.delay(failures, outcome.retry_after)
        return Recording(RETRYING, dict(
            event=RETRYING, spent_retry=True, next_attempt_at=utc(due), response=outcome.body,
            keep_response=save_response, error=error, detail=detail, **common), "delay", due, breaker=seen)
    if kind is OutcomeKind.SUSPECT:  # judged against the destination by the worker: no retry
        return Recording(QUEUED, dict(event=event or "destination_suspect", error=error, detail=detail, **common),
                         "release")
    # Destination-level: DESTINATION_FAILURE, RATE_LIMITED (and anything unexpected).
    reason = outcome.reason or kind.value
    if kind is OutcomeKind.RATE_LIMITED:
        due = now + (outcome.retry_after or policy.base)
        return Recording(QUEUED, dict(event="rate_limited", next_attempt_at=utc(due),
                                        error=outcome.message or reason, detail=reason, **common),
                         "delay", due, breaker="failure", breaker_reason=breaker_reason(outcome))
    return Recording(QUEUED, dict(event="destination_unavailable", error=outcome.message or reason,
                                    detail=reason, **common),
                     "release", breaker="failure", breaker_reason=breaker_reason(outcome))


class NullBreaker:
    """Stands in for the breaker for the 2nd…nth submission of a batch."""

    def record_success(self) -> None:
        pass

    def record_neutral(self) -> None:
        pass

    def record_failure(self, reason: str) -> None:
        pass


def _conflicts(outcome: Outcome) -> list[Any] | None:
    items: list[Any] = [dict(c) for c in outcome.conflicts]
    items += [dict(r) for r in outcome.error_reports]
    items += [dict(r, warning=True) for r in outcome.warning_reports]
    return items or None
