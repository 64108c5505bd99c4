"""The cron service on a ``task.Clock``: fire times in the configured zone, no overlap, once per schedule."""
from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.task import Clock, deferLater
from twisted.trial.unittest import TestCase

from dhis2gw.runtime.cron import Cron, CronJob, JobRunner
from dhis2gw.storage.cron_runs import CronRunStore
from dhis2gw.storage.database import Database
from tests.support.services import migrated_database

KAMPALA = zoneinfo.ZoneInfo("Africa/Kampala")  # UTC+3, no DST
START = datetime(2024, 3, 1, 0, 0, tzinfo=UTC).timestamp()


class CronTests(TestCase):
    """APScheduler's TwistedScheduler with the in-reactor executor, driven by a Clock."""

    timeout = 60

    async def _setup(self) -> None:
        self.db = Database(reactor, migrated_database(), size=3)
        self.db.startService()
        await self.db.started
        self.addCleanup(self.db.stopService)
        self.runs = CronRunStore(self.db)
        self.clock = Clock()
        self.clock.advance(START)

    def setUp(self) -> defer.Deferred[Any]:
        return defer.Deferred.fromCoroutine(self._setup())

    def cron(self, jobs: list[CronJob], host: str = "gw1") -> Cron:
        cron = Cron(self.clock, JobRunner(self.runs, host=host), jobs, KAMPALA, misfire_grace=120)
        cron.startService()
        self.addCleanup(cron.stopService)
        return cron

    async def settle(self, *crons: Cron) -> None:
        """Let the executions started by the last clock step finish (their SQL runs on the real reactor)."""
        for _ in range(3):
            running = [d for c in crons for d in c.in_flight()]
            if running:
                await defer.DeferredList(running)
            await deferLater(reactor, 0.01, lambda: None)

    async def rows(self, job: str) -> list[dict[str, Any]]:
        return await self.db.fetch("t", "SELECT scheduled_for, outcome, detail, host FROM cron_runs WHERE job = %s"
                                   " ORDER BY scheduled_for", (job,))

    async def test_fires_at_cron_times_in_the_configured_zone(self) -> None:
        """``0 0-23/6 * * *`` in Africa/Kampala fires at 21, 03, 09, 15 UTC; each run leaves a
        ``cron_runs`` row with its fire time, outcome and counts; the next run is reported."""
        fired: list[datetime] = []

        async def work() -> dict[str, int]:
            fired.append(datetime.fromtimestamp(self.clock.seconds(), UTC))
            return {"count": len(fired)}

        cron = self.cron([CronJob("sync", "0 0-23/6 * * *", work)])
        self.assertEqual(cron.next_run("sync"), datetime(2024, 3, 1, 6, 0, tzinfo=KAMPALA))
        for _ in range(24):
            self.clock.advance(3600)
            await self.settle(cron)
        self.assertEqual([f.hour for f in fired], [3, 9, 15, 21])
        self.assertEqual([f.minute for f in fired], [0, 0, 0, 0])
        rows = await self.rows("sync")
        self.assertEqual([r["scheduled_for"].astimezone(KAMPALA).hour for r in rows], [6, 12, 18, 0])
        self.assertEqual([(r["outcome"], r["detail"]) for r in rows], [("ok", {"count": i}) for i in range(1, 5)])

    async def test_a_slow_job_never_overlaps_itself(self) -> None:
        """An every-minute job that takes five minutes runs once; the fire times during it are
        skipped (max_instances=1), and the job runs again after it finished."""
        calls = 0
        gate: defer.Deferred[None] | None = None

        async def slow() -> dict[str, int]:
            nonlocal calls, gate
            calls += 1
            gate = defer.Deferred()
            await gate
            return {"call": calls}

        cron = self.cron([CronJob("slow", "* * * * *", slow)])
        while gate is None:
            await deferLater(reactor, 0.01, lambda: None)
        for _ in range(5):
            self.clock.advance(60)
            await deferLater(reactor, 0.01, lambda: None)
        self.assertEqual(calls, 1)
        assert gate is not None
        gate.callback(None)
        await self.settle(cron)
        self.clock.advance(60)
        while calls < 2:
            await deferLater(reactor, 0.01, lambda: None)
        gate.callback(None)
        await self.settle(cron)
        rows = await self.rows("slow")
        self.assertEqual([r["detail"] for r in rows], [{"call": 1}, {"call": 2}])
        # The first run is the 00:00 fire time (due when the scheduler started); 00:01..00:05 were
        # skipped while it ran; the next is 00:06.
        self.assertEqual([r["scheduled_for"].astimezone(UTC).minute for r in rows], [0, 6])

    async def test_two_gateways_run_each_schedule_once(self) -> None:
        """Two schedulers sharing PostgreSQL both fire every 5 minutes; each fire time runs exactly
        once (the cron_runs claim), whichever gateway wins it; failures are logged as ``error``."""
        done: list[str] = []

        def job(host: str) -> CronJob:
            async def work() -> dict[str, str]:
                done.append(host)
                if len(done) == 3:
                    raise RuntimeError("third run fails")
                return {"host": host}

            return CronJob("reconcile", "*/5 * * * *", work)

        first, second = self.cron([job("gw1")], "gw1"), self.cron([job("gw2")], "gw2")
        await self.settle(first, second)  # 00:00 is a fire time: due at start
        for _ in range(3):
            self.clock.advance(300)
            await self.settle(first, second)
        self.assertEqual(len(done), 4)
        rows = await self.rows("reconcile")
        self.assertEqual(len(rows), 4)
        self.assertEqual(len({r["scheduled_for"] for r in rows}), 4)
        self.assertEqual([r["outcome"] for r in rows], ["ok", "ok", "error", "ok"])
        self.assertIn("third run fails", rows[2]["detail"]["error"])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertEqual(sorted(r["host"] for r in rows), sorted(done))
        self.assertEqual(first.skipped.get("reconcile", 0) + second.skipped.get("reconcile", 0), 4)
