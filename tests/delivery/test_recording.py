"""``dhis2gw.delivery.recording``: each outcome's status, Redis move and breaker observation, and
what the worker does with them when PostgreSQL refuses the write."""
from __future__ import annotations

from typing import Any

from twisted.internet import defer, task
from twisted.trial.unittest import SynchronousTestCase

from dhis2gw.delivery.breaker import CircuitBreaker
from dhis2gw.delivery.recording import plan_recording
from dhis2gw.delivery.retry import RetryPolicy
from dhis2gw.delivery.worker import DestinationWorker
from dhis2gw.dhis2.outcome import Outcome
from dhis2gw.dhis2.outcome import OutcomeKind as K
from dhis2gw.storage.database import DatabaseUnavailable
from dhis2gw.testing import MemorySubmissionQueue, MemorySubmissionStore, ScriptedHealthCheck, ScriptedKind

POLICY = RetryPolicy(30, 3600, 3, random=lambda: 0.5)
#: name: (outcome, job failures so far, status, Redis move, seconds until due, breaker observation)
CASES = {
    "delivered": (Outcome(K.DELIVERED, http_status=200), 0, "delivered", "ack", None, "success"),
    "partial": (Outcome(K.PARTIAL, "conflicts", http_status=409), 0, "partial", "ack", None, "success"),
    "rejected": (Outcome(K.REJECTED, "conflicts", http_status=409), 0, "rejected", "ack", None, "success"),
    "retrying": (Outcome(K.RETRY, "bad_gateway", http_status=502), 0, "retrying", "delay", 15.0, "success"),
    "retrying, no answer": (Outcome(K.RETRY, "internal_error"), 1, "retrying", "delay", 30.0, "neutral"),
    "failed": (Outcome(K.RETRY, "bad_gateway", http_status=502), 3, "failed", "ack", None, "success"),
    "suspect": (Outcome(K.SUSPECT, "server_error", http_status=500), 0, "queued", "release", None, None),
    "rate limited": (Outcome(K.RATE_LIMITED, "rate_limited", http_status=429, retry_after=7.0), 0, "queued",
                     "delay", 7.0, "failure"),
    "unavailable": (Outcome(K.DESTINATION_FAILURE, "connection_refused"), 0, "queued", "release", None, "failure"),
}


def _row(job_failures: int) -> dict[str, Any]:
    return {"id": 7, "kind": "aggregate", "attempts": 2, "job_failures": job_failures}


class PlanTests(SynchronousTestCase):
    """``plan_recording`` for every kind of outcome, at a fixed time."""

    def test_every_outcome(self) -> None:
        """Status, Redis move, due time, breaker observation and the attempt's common fields."""
        for name, (outcome, failures, status, move, after, seen) in CASES.items():
            plan = plan_recording(_row(failures), outcome, destination="main", duration=0.25, policy=POLICY,
                                  now=1000.0, save_response=False)
            due = None if after is None else 1000.0 + after
            self.assertEqual((plan.status, plan.queue_move, plan.due, plan.breaker), (status, move, due, seen), name)
            self.assertEqual({k: plan.fields[k] for k in ("attempt", "destination", "duration_ms")},
                             {"attempt": 2, "destination": "main", "duration_ms": 250}, name)
            self.assertEqual(plan.fields.get("spent_retry", False), status in ("retrying", "failed"), name)


class _DownStore(MemorySubmissionStore):
    async def record(self, submission_id: int, token: str, status: str, **kw: Any) -> bool:  # type: ignore[override]
        raise DatabaseUnavailable("connection refused")


class DatabaseRefusesTests(SynchronousTestCase):
    """The worker's ``_record`` when PostgreSQL is unavailable: the id stays claimed (no Redis move,
    no observer); DHIS2's answer still reaches the breaker, except a final one, told only once recorded."""

    #: The breaker's consecutive failures afterwards, starting from one: a final answer is not
    #: told (1), an HTTP answer spending a retry is a success (0), no answer is neutral (1), a
    #: suspect was already told by the worker's judgment (1), a destination failure counts (2).
    FAILURES_AFTER = {"delivered": 1, "partial": 1, "rejected": 1, "retrying": 0, "retrying, no answer": 1,
                      "failed": 0, "suspect": 1, "rate limited": 2, "unavailable": 2}

    def test_each_outcome(self) -> None:
        """Per outcome: no Redis call, no observer, and the breaker's count as the rules say."""
        for name, (outcome, failures, *_) in CASES.items():
            clock = task.Clock()
            store, queue, observed = _DownStore(clock), MemorySubmissionQueue(clock), []
            breaker = CircuitBreaker(clock, threshold=5)
            breaker.record_failure("earlier")
            worker = DestinationWorker("main", clock, ScriptedHealthCheck(clock), breaker, queue, store,  # type: ignore
                                       {"aggregate": ScriptedKind(clock)}, POLICY, max_concurrent=1,
                                       observer=lambda *a, observed=observed: observed.append(a))
            done = defer.Deferred.fromCoroutine(worker._record(_row(failures), "t", outcome, 0.1))
            self.assertIsNone(self.successResultOf(done), name)
            self.assertEqual((queue.calls, observed), ([], []), name)
            self.assertEqual(breaker.consecutive_failures, self.FAILURES_AFTER[name], name)
