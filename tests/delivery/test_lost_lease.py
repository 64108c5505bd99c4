"""An attempt that lost its lease records nothing and leaves nothing behind in Redis or in memory.

When ``store.record`` answers False another attempt owns the submission now (the token guard):
the worker must neither ack/release/delay the id in Redis nor tell the observers — and must not
even create the Redis call it would have made (an un-awaited coroutine is a RuntimeWarning at
garbage collection, and a call that silently never happens).
"""
from __future__ import annotations

import gc
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from twisted.internet import defer, task
from twisted.trial.unittest import SynchronousTestCase

from dhis2gw.delivery.breaker import CircuitBreaker
from dhis2gw.delivery.retry import RetryPolicy
from dhis2gw.delivery.worker import DestinationWorker
from dhis2gw.dhis2.outcome import Outcome
from dhis2gw.dhis2.outcome import OutcomeKind as K
from dhis2gw.testing import MemorySubmissionQueue, MemorySubmissionStore, ScriptedHealthCheck, ScriptedKind


class _CountingQueue(MemorySubmissionQueue):
    """Counts the Redis calls *created*, awaited or not."""

    def __init__(self, clock: task.Clock) -> None:
        super().__init__(clock)
        self.created = 0

    def ack(self, dest: str, submission_id: int) -> Any:  # type: ignore[override]
        self.created += 1
        return super().ack(dest, submission_id)

    def release(self, dest: str, submission_id: int) -> Any:  # type: ignore[override]
        self.created += 1
        return super().release(dest, submission_id)

    def delay(self, dest: str, submission_id: int, due: float) -> Any:  # type: ignore[override]
        self.created += 1
        return super().delay(dest, submission_id, due)


@contextmanager
def no_unawaited_coroutines(test: SynchronousTestCase) -> Iterator[None]:
    """Fail ``test`` if a coroutine is finalised without having been awaited inside the block.

    CPython reports that as a RuntimeWarning from the coroutine's finaliser; when warnings are
    errors it becomes an "unraisable" exception instead. Both are caught here, after a full
    garbage collection so a coroutine kept alive by a reference cycle is found too.
    """
    unraisable: list[Any] = []
    previous_hook = sys.unraisablehook
    sys.unraisablehook = unraisable.append
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
            gc.collect()
    finally:
        sys.unraisablehook = previous_hook
    never_awaited = [str(w.message) for w in caught if "never awaited" in str(w.message)]
    never_awaited += [repr(u.exc_value) for u in unraisable]
    test.assertEqual(never_awaited, [], "coroutines never awaited")


class LostLeaseTests(SynchronousTestCase):
    """``DestinationWorker._record`` when the store refuses the outcome, for every kind of outcome."""

    CASES = {
        "delivered": (Outcome(K.DELIVERED, http_status=200, dhis2_status="SUCCESS"), 0),
        "rejected": (Outcome(K.REJECTED, "conflicts", http_status=409, dhis2_status="ERROR"), 0),
        "retrying": (Outcome(K.RETRY, "bad_gateway", http_status=502), 0),
        "failed (retries spent)": (Outcome(K.RETRY, "bad_gateway", http_status=502), 3),
        "destination unavailable": (Outcome(K.DESTINATION_FAILURE, "connection_refused"), 0),
        "rate limited": (Outcome(K.RATE_LIMITED, "rate_limited", http_status=429, retry_after=5.0), 0),
        "suspect": (Outcome(K.SUSPECT, "server_error", http_status=500), 0),
    }

    def test_nothing_is_sent_to_redis_nor_left_unawaited(self) -> None:
        """Each outcome of an attempt whose lease another attempt has since taken: the store refuses
        it (the row stays the other attempt's), no Redis call is created (so none is left un-awaited
        after a garbage collection), no observer is told, and the attempt ends normally."""
        for name, (outcome, job_failures) in self.CASES.items():
            clock = task.Clock()
            store, queue, seen = MemorySubmissionStore(clock), _CountingQueue(clock), []
            worker = DestinationWorker("main", clock, ScriptedHealthCheck(clock), CircuitBreaker(clock, threshold=5),
                                       queue, store, {"aggregate": ScriptedKind(clock)},  # type: ignore[arg-type]
                                       RetryPolicy(30, 3600, 3, random=lambda: 0.5), max_concurrent=5,
                                       observer=lambda *a, seen=seen: seen.append(a))
            sid = store.add(job_failures=job_failures)
            row = self.successResultOf(defer.Deferred.fromCoroutine(store.start_attempt(sid, "lost", "main")))
            # The lease lapsed and another attempt took the submission.
            self.successResultOf(defer.Deferred.fromCoroutine(store.start_attempt(sid, "winner", "main")))
            with no_unawaited_coroutines(self):
                done = defer.Deferred.fromCoroutine(worker._record(row, "lost", outcome, 0.25))
                self.assertIsNone(self.successResultOf(done), name)
            self.assertEqual((store.records, store.rows[sid]["status"], store.rows[sid]["lease_owner"]),
                             ([], "processing", "winner"), name)
            self.assertEqual((queue.created, queue.calls, seen), (0, [], []), name)
