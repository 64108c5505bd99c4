"""The suspect rule (dhis2gw.delivery.outcome_rules) on a task.Clock: every row and the mixed cases."""
from __future__ import annotations

from twisted.internet import defer, task
from twisted.trial.unittest import SynchronousTestCase

from dhis2gw.delivery.breaker import CircuitBreaker
from dhis2gw.delivery.outcome_rules import DestinationHealth, Verdict, breaker_reason
from dhis2gw.dhis2.outcome import Outcome
from dhis2gw.dhis2.outcome import OutcomeKind as K

OK = Outcome(K.DELIVERED, message="HTTP 200")
DOWN = Outcome(K.SUSPECT, "server_error", http_status=500)


class ScriptedCheck:
    """A health check whose answers a test gives, at the time it chooses (on the Clock)."""

    def __init__(self, clock: task.Clock, answers: list[Outcome], delay: float = 1.0) -> None:
        self.clock, self.answers, self.delay, self.calls = clock, list(answers), delay, 0

    def __call__(self) -> defer.Deferred[Outcome]:
        self.calls += 1
        answer = self.answers.pop(0)
        return task.deferLater(self.clock, self.delay, lambda: answer)


class SuspectRuleTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = task.Clock()

    def judge(self, health: DestinationHealth, seq: int) -> tuple[Verdict, Outcome | None]:
        d = defer.Deferred.fromCoroutine(health.judge(seq))
        self.clock.advance(5)
        return self.successResultOf(d)

    def test_failing_check_requeues(self) -> None:
        """Suspect, no success since, the health check fails: back to the queue, no retry."""
        check = ScriptedCheck(self.clock, [DOWN])
        health = DestinationHealth(check)
        verdict, seen = self.judge(health, health.start())
        self.assertEqual((verdict, seen, check.calls), (Verdict.REQUEUE, DOWN, 1))

    def test_passing_check_spends_a_retry(self) -> None:
        """Suspect, the health check succeeds: the payload is suspected (a poison payload)."""
        check = ScriptedCheck(self.clock, [OK])
        health = DestinationHealth(check)
        self.assertEqual(self.judge(health, health.start()), (Verdict.SPEND_RETRY, OK))

    def test_success_elsewhere_after_start_spends_without_check(self) -> None:
        """A delivery that started after this attempt succeeded: DHIS2 is healthy, no check needed."""
        check = ScriptedCheck(self.clock, [])
        health = DestinationHealth(check)
        mine = health.start()
        other = health.start()
        health.observe(other, Outcome(K.PARTIAL))
        self.assertEqual(self.judge(health, mine), (Verdict.SPEND_RETRY, None))
        self.assertEqual(check.calls, 0)

    def test_success_of_an_older_request_proves_nothing(self) -> None:
        """A success of a request that started before this attempt may predate the outage: check."""
        check = ScriptedCheck(self.clock, [DOWN])
        health = DestinationHealth(check)
        older = health.start()
        mine = health.start()
        health.observe(older, OK)
        self.assertEqual(self.judge(health, mine)[0], Verdict.REQUEUE)
        self.assertEqual(check.calls, 1)

    def test_suspect_answers_show_nothing(self) -> None:
        """Another suspect or destination failure after this attempt started is not health."""
        health = DestinationHealth(ScriptedCheck(self.clock, [DOWN]))
        mine = health.start()
        health.observe(health.start(), DOWN)
        health.observe(health.start(), Outcome(K.DESTINATION_FAILURE, "http_503"))
        health.observe(health.start(), Outcome(K.RETRY, "import_failed_transient"))
        self.assertEqual(self.judge(health, mine)[0], Verdict.REQUEUE)

    def test_two_suspects_share_one_failing_check(self) -> None:
        """Two suspect failures and a failing probe: one check for both, both requeued, nothing spent."""
        check = ScriptedCheck(self.clock, [DOWN])
        health = DestinationHealth(check)
        a, b = health.start(), health.start()
        da = defer.Deferred.fromCoroutine(health.judge(a))
        db = defer.Deferred.fromCoroutine(health.judge(b))
        self.clock.advance(5)
        self.assertEqual(self.successResultOf(da)[0], Verdict.REQUEUE)
        self.assertEqual(self.successResultOf(db)[0], Verdict.REQUEUE)
        self.assertEqual(check.calls, 1)

    def test_a_check_older_than_the_attempt_is_not_shared(self) -> None:
        """A check already running when this attempt started cannot speak for it: a new one runs."""
        check = ScriptedCheck(self.clock, [DOWN, OK])
        health = DestinationHealth(check)
        first = defer.Deferred.fromCoroutine(health.check())
        mine = health.start()
        later = defer.Deferred.fromCoroutine(health.judge(mine))
        self.clock.advance(5)
        self.assertEqual(self.successResultOf(first), DOWN)
        self.assertEqual(self.successResultOf(later), (Verdict.SPEND_RETRY, OK))
        self.assertEqual(check.calls, 2)

    def test_successful_check_counts_as_health_for_later_judgments(self) -> None:
        """A passing check is evidence for every attempt that started before it."""
        check = ScriptedCheck(self.clock, [OK])
        health = DestinationHealth(check)
        a, b = health.start(), health.start()
        self.assertEqual(self.judge(health, b)[0], Verdict.SPEND_RETRY)
        self.assertEqual(self.judge(health, a), (Verdict.SPEND_RETRY, None))
        self.assertEqual(check.calls, 1)

    def test_check_that_raises_is_not_health(self) -> None:
        def broken() -> defer.Deferred[Outcome]:
            return defer.fail(RuntimeError("bug"))
        health = DestinationHealth(broken)
        verdict, seen = self.judge(health, health.start())
        self.assertEqual((verdict, seen.kind if seen else None), (Verdict.REQUEUE, K.SUSPECT))

    def test_breaker_reasons_name_the_shape(self) -> None:
        cases = {Outcome(K.SUSPECT, "server_error"): "server_error", Outcome(K.SUSPECT, "timeout"): "timeout",
                 Outcome(K.SUSPECT, "connection_lost"): "connection_lost",
                 Outcome(K.DESTINATION_FAILURE, "http_503"): "unavailable",
                 Outcome(K.DESTINATION_FAILURE, "http_502"): "unavailable",
                 Outcome(K.DESTINATION_FAILURE, "connection_refused"): "connection_refused",
                 Outcome(K.DESTINATION_FAILURE, "connect_timeout"): "timeout",
                 Outcome(K.DESTINATION_FAILURE, "connection_reset"): "connection_lost",
                 Outcome(K.DESTINATION_FAILURE, "dns"): "dns", Outcome(K.DESTINATION_FAILURE, "tls"): "tls",
                 Outcome(K.DESTINATION_FAILURE, "auth"): "auth",
                 Outcome(K.DESTINATION_FAILURE, "not_found"): "not_found"}
        self.assertEqual({breaker_reason(o): v for o, v in cases.items()} == {v: v for v in cases.values()}, True)
        for outcome, reason in cases.items():
            self.assertEqual(breaker_reason(outcome), reason, outcome)

    def test_half_open_trial_suspect_reopens(self) -> None:
        """Half-open: the trial's suspect failure with a failing check re-opens the breaker, nothing spent."""
        breaker = CircuitBreaker(self.clock, threshold=5)
        for _ in range(5):
            breaker.record_failure("server_error")
        breaker.probe_succeeded()
        self.assertEqual(breaker.state, "half_open")
        breaker.claimed()
        health = DestinationHealth(ScriptedCheck(self.clock, [DOWN]))
        verdict, _ = self.judge(health, health.start())
        self.assertEqual(verdict, Verdict.REQUEUE)
        breaker.record_failure(breaker_reason(DOWN))  # what the worker does on REQUEUE
        self.assertEqual((breaker.state, breaker.reason), ("open", "server_error"))
