"""Services that wait for the database before starting stop at once when it never came.

The dispatcher, cron and the metadata cache start their work only when ``db.started`` fires. A
SIGTERM while PostgreSQL is unreachable must not wait for that start (it may never come), and a
start that comes after the stop must not start anything. Everything runs on a ``task.Clock``:
"at once" means the stop's Deferred has fired without the clock being advanced.
"""
from __future__ import annotations

from datetime import UTC
from typing import Any

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from dhis2gw.delivery.dispatcher import Dispatcher
from dhis2gw.delivery.retry import RetryPolicy
from dhis2gw.dhis2.outcome import Outcome, OutcomeKind


class _Client:
    """A destination client never called before the start (only its health check is referenced)."""

    async def health_check(self) -> Outcome:
        return Outcome(OutcomeKind.DELIVERED)


class _Untouchable:
    """Any collaborator that must not be used while the database has not started."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.redis = self

    def __getattr__(self, attr: str) -> Any:
        raise AssertionError(f"{self.name}.{attr} used before the database started")


class DispatcherStopBeforeReadyTests(SynchronousTestCase):
    """``Dispatcher.stopService`` while ``ready`` (the database's ``started``) has not fired."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.ready: defer.Deferred[Any] = defer.Deferred()
        self.dispatcher = Dispatcher(self.clock, _Untouchable("queue"), _Untouchable("store"), {},
                                     {"main": _Client(), "backup": _Client()}, RetryPolicy(1.0, 10.0, 3),
                                     shutdown_timeout=30.0, ready=self.ready)

    def test_stop_completes_without_the_clock_moving(self) -> None:
        """Started, then stopped before ``ready``: the stop's Deferred has already fired; nothing
        is scheduled on the clock and no worker runs."""
        self.dispatcher.startService()
        stopped = self.dispatcher.stopService()
        self.assertIsNone(self.successResultOf(stopped))
        self.assertFalse(self.dispatcher.running)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual([w.running for w in self.dispatcher.workers.values()], [False, False])

    def test_a_late_start_starts_nothing(self) -> None:
        """``ready`` firing after the stop: no housekeeping loop, no claim loop, nothing on the clock."""
        self.dispatcher.startService()
        self.successResultOf(self.dispatcher.stopService())
        self.ready.callback(None)
        self.assertEqual(self.dispatcher._loops, [])
        self.assertEqual([w.running for w in self.dispatcher.workers.values()], [False, False])
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertFalse(self.dispatcher.reconciled.called)


class CronStopBeforeReadyTests(SynchronousTestCase):
    """``Cron.stopService`` while ``ready`` has not fired."""

    def test_stop_completes_and_a_late_start_schedules_nothing(self) -> None:
        """The stop has fired at once; ``ready`` firing later creates no scheduler."""
        from dhis2gw.runtime.cron import Cron, CronJob

        async def work() -> None:
            raise AssertionError("a job ran after the stop")

        clock = Clock()
        ready: defer.Deferred[Any] = defer.Deferred()
        cron = Cron(clock, _Untouchable("runner"), [CronJob("job", "* * * * *", work)], UTC, ready=ready)
        cron.startService()
        self.assertIsNone(self.successResultOf(cron.stopService()))
        ready.callback(None)
        self.assertIsNone(cron.scheduler)
        self.assertFalse(cron.started.called)
        self.assertEqual(clock.getDelayedCalls(), [])


class MetadataCacheStopBeforeReadyTests(SynchronousTestCase):
    """``MetadataCache.stopService`` while the database's ``started`` has not fired."""

    def test_stop_completes_and_a_late_start_loads_nothing(self) -> None:
        """The stop has fired at once; ``started`` firing later neither reads PostgreSQL nor starts
        the refresh loop."""
        from dhis2gw.mapping.metadata_cache import MetadataCache

        clock = Clock()
        started: defer.Deferred[Any] = defer.Deferred()
        cache = MetadataCache(_Untouchable("db"), {"main": _Client()}, clock, started=started)
        reads: list[str] = []

        async def load(name: str) -> list[Any]:
            reads.append(name)
            return []

        cache.store.load = load  # type: ignore[method-assign]
        cache.startService()
        self.assertEqual(self.successResultOf(cache.stopService()), [])
        started.callback(None)
        self.assertEqual(reads, [])
        self.assertFalse(cache._loop is not None and cache._loop.running)
        self.assertEqual(clock.getDelayedCalls(), [])
