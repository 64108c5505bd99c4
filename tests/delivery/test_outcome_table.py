"""Every row of the README's outcome table, and the mixed cases, through a DestinationWorker on a task.Clock.

The worker runs with the fakes of ``dhis2gw.testing``: PostgreSQL (``MemorySubmissionStore``), Redis
(``MemorySubmissionQueue``), the DHIS2 client's health check (``ScriptedHealthCheck``) and the
submission kind (``ScriptedKind``: scripted deliveries and read-backs that answer when the test
advances the Clock). Each test checks what is recorded
(status, event, whether a retry is spent), what happens to the id in Redis, and the breaker.
"""
from __future__ import annotations

from typing import Any

from twisted.internet import defer, task
from twisted.trial.unittest import SynchronousTestCase

from dhis2gw.delivery.breaker import CircuitBreaker
from dhis2gw.delivery.retry import RetryPolicy
from dhis2gw.delivery.worker import DestinationWorker
from dhis2gw.dhis2.outcome import Outcome, ReadBack
from dhis2gw.dhis2.outcome import OutcomeKind as K
from dhis2gw.testing import MemorySubmissionQueue, MemorySubmissionStore, ScriptedHealthCheck, ScriptedKind

OK = Outcome(K.DELIVERED, http_status=200, dhis2_status="SUCCESS")
DB_DOWN = Outcome(K.SUSPECT, "server_error", http_status=500, message="Unable to acquire JDBC Connection")
TIMEOUT = Outcome(K.SUSPECT, "timeout", message="no answer within 120 s")
LOST = Outcome(K.SUSPECT, "connection_lost", message="connection lost after sending")
MAX_RETRIES = 3


class OutcomeTableTests(SynchronousTestCase):
    """One test per row of the README's outcome table, then the mixed cases."""

    def setUp(self) -> None:
        self.clock = task.Clock()
        self.store = MemorySubmissionStore(self.clock)
        self.queue = MemorySubmissionQueue(self.clock)
        self.kind = ScriptedKind(self.clock)
        self.client = ScriptedHealthCheck(self.clock)
        self.breaker = CircuitBreaker(self.clock, threshold=5)
        self.worker = DestinationWorker("main", self.clock, self.client, self.breaker, self.queue,  # type: ignore
                                        self.store, {"aggregate": self.kind},  # type: ignore[arg-type]
                                        RetryPolicy(30, 3600, MAX_RETRIES, random=lambda: 0.5), max_concurrent=5,
                                        save_response=False)

    def attempt(self, sid: int, *outcomes: Outcome, delay: float = 1.0, job_failures: int = 0,
                reads: tuple[ReadBack | None, ...] = (), checks: tuple[Outcome, ...] = ()) -> defer.Deferred[None]:
        """Start the attempt of submission ``sid``, whose delivery answers ``outcomes[0]`` after ``delay``."""
        if sid not in self.store.rows:
            self.store.add(id=sid, job_failures=job_failures)
        self.kind.deliveries.setdefault(sid, []).extend((delay, o) for o in outcomes)
        self.kind.reads.setdefault(sid, []).extend((1.0, r) for r in reads)
        self.client.answers.extend(checks)
        return defer.Deferred.fromCoroutine(self.worker._attempt(sid))

    def settle(self, sid: int, *outcomes: Outcome, **kw: Any) -> dict[str, Any]:
        """Run one attempt to its end; the record it made."""
        d = self.attempt(sid, *outcomes, **kw)
        self.clock.pump([0.5] * 30)
        self.successResultOf(d)
        return self.store.last(sid)

    # --- final answers -------------------------------------------------------------------------
    def test_success_is_delivered(self) -> None:
        """SUCCESS / OK → delivered, no retry, id acked, the breaker stays closed."""
        record = self.settle(1, OK)
        self.assertEqual((record["status"], record["spent_retry"]), ("delivered", False))
        self.assertEqual(self.queue.calls, [("ack", "main", 1)])
        self.assertEqual((self.breaker.state, self.breaker.consecutive_failures), ("closed", 0))

    def test_warning_is_partial(self) -> None:
        """WARNING (or ERROR with some values stored) → partial, no retry."""
        record = self.settle(1, Outcome(K.PARTIAL, "conflicts", http_status=409, dhis2_status="WARNING"))
        self.assertEqual((record["status"], record["spent_retry"]), ("partial", False))
        self.assertEqual(self.queue.calls, [("ack", "main", 1)])

    def test_error_is_rejected(self) -> None:
        """ERROR with nothing stored, 400/404 JSON/413/415/422 → rejected, no retry."""
        for sid, status in enumerate((409, 400, 404, 413, 415, 422), 1):
            record = self.settle(sid, Outcome(K.REJECTED, "conflicts", http_status=status, dhis2_status="ERROR"))
            self.assertEqual((record["status"], record["spent_retry"]), ("rejected", False), status)
        self.assertEqual(self.breaker.state, "closed")

    # --- suspect: read back first, then judged by DHIS2's health ---------------------------------
    def test_timeout_confirmed_by_read_back(self) -> None:
        """Read timeout, every value there as sent → delivered (confirmed_by_read_back), no second import."""
        record = self.settle(1, TIMEOUT, reads=(ReadBack("confirmed", message="1 value as sent"),))
        self.assertEqual((record["status"], record["event"], record["spent_retry"]),
                         ("delivered", "confirmed_by_read_back", False))
        self.assertEqual((self.kind.delivered, self.kind.read, self.client.checks), ([1], [1], 0))
        self.assertEqual(self.breaker.consecutive_failures, 0)

    def test_lost_answer_confirmed_by_read_back(self) -> None:
        """Connection lost after sending, the data is there → delivered without a second import."""
        record = self.settle(1, LOST, reads=(ReadBack("confirmed"),))
        self.assertEqual((record["status"], record["event"]), ("delivered", "confirmed_by_read_back"))
        self.assertEqual(self.kind.delivered, [1])

    def test_server_error_with_failing_check_goes_back_to_the_queue(self) -> None:
        """500 with a DHIS2 body (no read-back: nothing was committed), the health check fails →
        back to the queue with destination_suspect, no retry; the breaker counts it as server_error."""
        record = self.settle(1, DB_DOWN, checks=(DB_DOWN,))
        self.assertEqual((record["status"], record["event"], record["spent_retry"]),
                         ("queued", "destination_suspect", False))
        self.assertIn("server_error", record["detail"])
        self.assertEqual((self.kind.read, self.client.checks), ([], 1))
        self.assertEqual(self.queue.calls, [("release", "main", 1)])
        self.assertEqual(self.breaker.consecutive_failures, 1)

    def test_server_error_with_passing_check_spends_a_retry(self) -> None:
        """500, the health check passes right after: the payload is suspected → retrying with backoff."""
        record = self.settle(1, DB_DOWN, checks=(OK,))
        self.assertEqual((record["status"], record["spent_retry"]), ("retrying", True))
        self.assertEqual(self.queue.calls, [("delay", "main", 1, 15.0)])  # base 30 × jitter 0.5
        self.assertEqual((self.breaker.state, self.breaker.consecutive_failures), ("closed", 0))

    def test_suspect_fails_once_max_retries_are_spent(self) -> None:
        """A suspect failure with DHIS2 healthy and max_retries spent already → failed (a poison payload)."""
        record = self.settle(1, DB_DOWN, job_failures=MAX_RETRIES, checks=(OK,))
        self.assertEqual((record["status"], record["spent_retry"]), ("failed", True))
        self.assertEqual(self.queue.calls, [("ack", "main", 1)])

    def test_timeout_with_data_missing_spends_a_retry(self) -> None:
        """Timeout, the read-back answers that the data is missing: that answer shows DHIS2 healthy
        (no separate check) → retrying."""
        record = self.settle(1, TIMEOUT, reads=(ReadBack("missing", message="0 of 1 values"),))
        self.assertEqual((record["status"], record["spent_retry"]), ("retrying", True))
        self.assertEqual(self.client.checks, 0)

    def test_lost_answer_with_failing_read_back_goes_back_to_the_queue(self) -> None:
        """Lost answer, the read-back itself gets no answer: nothing known, DHIS2 not healthy →
        back to the queue, no retry, breaker counts connection_lost (the read-back was the check)."""
        failed = ReadBack("failed", Outcome(K.SUSPECT, "connection_lost"))
        record = self.settle(1, LOST, reads=(failed,))
        self.assertEqual((record["status"], record["event"], record["spent_retry"]),
                         ("queued", "destination_suspect", False))
        self.assertEqual(self.client.checks, 0)
        self.assertEqual(self.breaker.consecutive_failures, 1)

    def test_suspects_open_the_breaker_with_the_shape(self) -> None:
        """breaker_threshold suspect failures with failing checks open the breaker, reason = the shape."""
        for sid in range(1, 6):
            self.settle(sid, TIMEOUT, reads=(ReadBack("failed", TIMEOUT),))
        self.assertEqual((self.breaker.state, self.breaker.reason), ("open", "timeout"))
        self.assertEqual(sum(r["spent_retry"] for r in self.store.records), 0)

    # --- DHIS2 said "try again" -------------------------------------------------------------------
    def test_transient_answer_spends_a_retry_then_fails(self) -> None:
        """A transient 409 (BatchHandler flush, SQL state) → retrying; with max_retries spent → failed."""
        transient = Outcome(K.RETRY, "import_failed_transient", http_status=409)
        self.assertEqual(self.settle(1, transient)["status"], "retrying")
        record = self.settle(2, transient, job_failures=MAX_RETRIES)
        self.assertEqual((record["status"], record["spent_retry"]), ("failed", True))
        self.assertEqual(self.breaker.state, "closed")  # DHIS2 answered: not a destination failure

    # --- destination-level -------------------------------------------------------------------------
    def test_destination_failures_go_back_to_the_queue(self) -> None:
        """Connection refused/reset before sending, DNS, TLS, 502/503/504, HTML pages, an HTML 404 →
        back to the queue, no retry; the breaker counts each under the shape's name."""
        cases = {"connect_error": "connection_refused", "connection_reset": "connection_lost", "dns": "dns",
                 "tls": "tls", "http_502": "unavailable", "http_503": "unavailable", "http_504": "unavailable",
                 "not_json": "unavailable", "not_found": "not_found"}
        for sid, (reason, shape) in enumerate(cases.items(), 1):
            self.breaker = self.worker.breaker = CircuitBreaker(self.clock, threshold=1)
            record = self.settle(sid, Outcome(K.DESTINATION_FAILURE, reason))
            self.assertEqual((record["status"], record["event"], record["spent_retry"]),
                             ("queued", "destination_unavailable", False), reason)
            self.assertEqual(self.queue.calls[-1], ("release", "main", sid))
            self.assertEqual((self.breaker.state, self.breaker.reason), ("open", shape), reason)

    def test_auth_opens_the_breaker_at_once(self) -> None:
        """401/403 (or a redirect to the login page) → back to the queue; the breaker opens with auth."""
        record = self.settle(1, Outcome(K.DESTINATION_FAILURE, "auth", http_status=401))
        self.assertEqual((record["status"], record["spent_retry"]), ("queued", False))
        self.assertEqual((self.breaker.state, self.breaker.reason), ("open", "auth"))

    def test_429_is_delayed_by_retry_after(self) -> None:
        """429 → delayed by Retry-After, no retry; the breaker counts it."""
        record = self.settle(1, Outcome(K.RATE_LIMITED, "rate_limited", http_status=429, retry_after=7))
        self.assertEqual((record["status"], record["event"], record["spent_retry"]), ("queued", "rate_limited", False))
        self.assertEqual(self.queue.calls, [("delay", "main", 1, 7.0)])
        self.assertEqual(self.breaker.consecutive_failures, 1)

    # --- mixed cases -------------------------------------------------------------------------------
    def test_suspect_then_success_elsewhere(self) -> None:
        """A delivery that started after the suspect attempt succeeded: DHIS2 is healthy for other work,
        so the suspect payload spends a retry — no health check needed."""
        slow = self.attempt(1, DB_DOWN, delay=3)
        fast = self.attempt(2, OK, delay=1)
        self.clock.pump([0.5] * 30)
        self.successResultOf(slow)
        self.successResultOf(fast)
        self.assertEqual((self.store.last(1)["status"], self.store.last(1)["spent_retry"]), ("retrying", True))
        self.assertEqual(self.store.last(2)["status"], "delivered")
        self.assertEqual(self.client.checks, 0)

    def test_success_of_an_earlier_attempt_proves_nothing(self) -> None:
        """A success of a delivery that started before the suspect attempt may predate the outage:
        the health check decides (here it fails: back to the queue)."""
        earlier = self.attempt(2, OK, delay=2)
        mine = self.attempt(1, DB_DOWN, delay=1, checks=(DB_DOWN,))
        self.clock.pump([0.5] * 30)
        self.successResultOf(earlier)
        self.successResultOf(mine)
        self.assertEqual((self.store.last(1)["status"], self.store.last(1)["spent_retry"]), ("queued", False))
        self.assertEqual(self.client.checks, 1)

    def test_two_suspects_and_a_failing_probe(self) -> None:
        """Two suspect failures share one failing health check: both back to the queue, nothing spent,
        the breaker open (threshold 2); its probe (the same check) fails: it stays open."""
        self.breaker = self.worker.breaker = CircuitBreaker(self.clock, threshold=2)
        first = self.attempt(1, DB_DOWN, checks=(DB_DOWN,))
        second = self.attempt(2, DB_DOWN)
        self.clock.pump([0.5] * 30)
        self.successResultOf(first)
        self.successResultOf(second)
        self.assertEqual([(r["status"], r["spent_retry"]) for r in self.store.records], [("queued", False)] * 2)
        self.assertEqual(self.client.checks, 1)
        self.assertEqual((self.breaker.state, self.breaker.reason), ("open", "server_error"))
        self.client.answers.append(DB_DOWN)
        probe = defer.Deferred.fromCoroutine(self.worker.health.check())
        self.clock.pump([0.5] * 4)
        self.assertEqual(self.successResultOf(probe), DB_DOWN)
        self.assertEqual((self.breaker.state, self.client.checks), ("open", 2))

    def test_half_open_trial_suspect_with_failing_check_reopens(self) -> None:
        """Half-open, the one submission let through fails suspect and the check fails: the breaker
        re-opens, no retry counted."""
        self.breaker.record_failure("server_error")
        self.breaker.force_open("server_error")
        self.breaker.probe_succeeded()
        self.breaker.claimed()
        record = self.settle(1, DB_DOWN, checks=(DB_DOWN,))
        self.assertEqual((record["status"], record["spent_retry"]), ("queued", False))
        self.assertEqual((self.breaker.state, self.breaker.reason), ("open", "server_error"))

    def test_half_open_trial_suspect_with_passing_check_spends_and_closes(self) -> None:
        """Half-open, the trial fails suspect but the check shows DHIS2 healthy: a retry is spent (this
        payload is suspected) and the breaker closes."""
        self.breaker.force_open("server_error")
        self.breaker.probe_succeeded()
        self.breaker.claimed()
        record = self.settle(1, DB_DOWN, checks=(OK,))
        self.assertEqual((record["status"], record["spent_retry"]), ("retrying", True))
        self.assertEqual(self.breaker.state, "closed")
