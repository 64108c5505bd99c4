"""The DHIS2 metadata cache: what it reads from the simulator, persistence, schedule, staleness, API."""
from __future__ import annotations

from datetime import UTC

from twisted.internet import defer, reactor
from twisted.internet.task import Clock

from dhis2gw.dhis2.auth import BasicAuth
from dhis2gw.dhis2.client import DHIS2Client
from dhis2gw.dhis2.metadata import DHIS2ReadError
from dhis2gw.mapping.metadata_cache import MetadataCache
from tests.mapping.support import SUBMITTER, MappingRig, wait
from tests.sim.support import (
    COC_DEFAULT,
    COC_MALE_LT5,
    DE_MAL_CONF,
    DE_MAL_DEATHS,
    DE_OPD,
    DS_HMIS,
    DS_MAL,
    FAC_CR,
    FAC_NR,
    ROOT,
)


class MetadataCacheTests(MappingRig):
    """A refresh from the simulator, then life without DHIS2."""

    prevalidate = False

    async def test_refresh_reads_what_validation_needs(self) -> None:
        """Data sets with per-element COCs (override honoured), value types, COCs, org units with assignments."""
        await self.refresh_metadata()
        snap = self.metadata.snapshots["main"]
        hmis, mal = snap.data_sets[DS_HMIS], snap.data_sets[DS_MAL]
        self.assertEqual(hmis.period_type, "Monthly")
        self.assertEqual(hmis.elements[DE_MAL_DEATHS].category_option_combos, {COC_DEFAULT})  # the override
        self.assertIn(COC_MALE_LT5, mal.elements[DE_MAL_DEATHS].category_option_combos)
        self.assertEqual(len(mal.elements[DE_MAL_DEATHS].category_option_combos), 4)
        self.assertIn(FAC_NR, mal.organisation_units)
        self.assertNotIn(FAC_CR, mal.organisation_units)
        self.assertEqual(snap.data_elements[DE_OPD]["valueType"], "INTEGER_POSITIVE")
        self.assertEqual(snap.data_elements[DE_MAL_CONF]["valueType"], "INTEGER_ZERO_OR_POSITIVE")
        self.assertEqual(snap.default_coc, COC_DEFAULT)
        self.assertEqual(len(snap.org_units), 47)
        self.assertTrue(snap.org_units[FAC_NR].startswith(f"/{ROOT}/"))
        self.assertEqual(self.metadata.state("main"), "fresh")

    async def test_persisted_restart_without_dhis2(self) -> None:
        """A new cache (a restarted gateway) loads the snapshot from PostgreSQL while DHIS2 is down; a failed
        refresh keeps it and reports the error."""
        await self.refresh_metadata()
        dead = DHIS2Client(reactor, "http://127.0.0.1:9", BasicAuth("admin", "district"), connect_timeout=1)
        self.addCleanup(dead.close)
        started: defer.Deferred[None] = defer.Deferred()
        restarted = MetadataCache(self.db, {"main": dead}, reactor, started=started)
        restarted.startService()
        self.addCleanup(restarted.stopService)
        started.callback(None)
        while restarted.snapshots.get("main") is None:
            await wait(0.02)
        self.assertEqual(restarted.state("main"), "fresh")
        snap = restarted.snapshots["main"]
        self.assertEqual(snap.data_sets[DS_HMIS].elements[DE_MAL_DEATHS].category_option_combos, {COC_DEFAULT})
        self.assertEqual(snap.counts(), self.metadata.snapshots["main"].counts())
        with self.assertRaises(DHIS2ReadError):
            await restarted.refresh("main")
        self.assertIn("last_error", restarted.status()["main"])
        self.assertIs(restarted.snapshots["main"], snap)

    async def test_scheduled_refresh_and_staleness(self) -> None:
        """The loop on the injected clock refreshes every interval; past max_age the snapshot is stale."""
        clock = Clock()
        clock.advance(1_000_000)
        cache = MetadataCache(self.db, {"main": self.client}, clock, interval=600, max_age=3600)
        cache.startService()
        self.addCleanup(cache.stopService)
        while cache.snapshots.get("main") is None:  # empty at start: refreshed at once
            await wait(0.02)
        reads = sum(1 for r in self.sim.store.requests if r.path.endswith("/dataSets"))
        clock.advance(600)
        while sum(1 for r in self.sim.store.requests if r.path.endswith("/dataSets")) == reads:
            await wait(0.02)
        while cache._running:
            await wait(0.02)
        self.assertEqual(cache.snapshots["main"].fetched_at, clock.seconds())
        cache.stopService()
        clock.advance(3601)
        self.assertEqual(cache.state("main"), "stale")
        self.assertEqual(cache.status()["main"]["state"], "stale")

    async def test_api(self) -> None:
        """GET /metadata reports the state; POST /metadata/refresh fills it; submitters are refused."""
        before = await self.call("GET", "/api/v2/metadata")
        self.assertEqual(before.json["destinations"]["main"]["state"], "empty")
        refreshed = await self.call("POST", "/api/v2/metadata/refresh")
        self.assertEqual(refreshed.code, 200, refreshed.json)
        self.assertEqual(refreshed.json["refreshed"][0]["counts"]["data_sets"], 3)
        after = await self.call("GET", "/api/v2/metadata")
        self.assertEqual(after.json["destinations"]["main"]["state"], "fresh")
        self.assertEqual(after.json["destinations"]["main"]["counts"]["org_units"], 47)
        unknown = await self.call("POST", "/api/v2/metadata/refresh?destination=nope")
        self.assertEqual(unknown.code, 404)
        self.assertEqual((await self.call("POST", "/api/v2/metadata/refresh", headers=SUBMITTER)).code, 403)


class MetadataRefreshJobTests(MappingRig):
    """The ``metadata_refresh`` cron job the composition root schedules, fired on a Clock."""

    prevalidate = False

    async def test_the_cron_fires_metadata_refresh(self) -> None:
        """At the job's cron time the cron service refreshes every destination's metadata from
        DHIS2, persists it, and records the run with what was refreshed."""
        from datetime import datetime

        from twisted.internet.task import deferLater

        from dhis2gw.runtime.cron import Cron, JobRunner
        from dhis2gw.storage.cron_runs import CronRunStore
        from dhis2gw.wiring.features import METADATA_REFRESH_CRON, metadata_job

        clock = Clock()
        clock.advance(datetime(2024, 3, 1, 5, 0, tzinfo=UTC).timestamp())
        job = metadata_job(self.metadata)
        self.assertEqual((job.name, job.cron_expression), ("metadata_refresh", METADATA_REFRESH_CRON))
        cron = Cron(clock, JobRunner(CronRunStore(self.db)), [job], UTC)
        cron.startService()
        self.addCleanup(cron.stopService)
        self.assertEqual(cron.next_run("metadata_refresh"), datetime(2024, 3, 1, 6, 0, tzinfo=UTC))
        self.assertEqual(self.metadata.state("main"), "empty")
        reads = sum(1 for r in self.sim.store.requests if r.path.endswith("/dataSets"))
        clock.advance(3600)
        for _ in range(50):
            running = cron.in_flight()
            if not running:
                break
            await defer.DeferredList(running)
            await deferLater(reactor, 0.01, lambda: None)
        self.assertEqual(self.metadata.state("main"), "fresh")
        self.assertGreater(sum(1 for r in self.sim.store.requests if r.path.endswith("/dataSets")), reads)
        rows = await self.db.fetch("t", "SELECT outcome, detail FROM cron_runs WHERE job = 'metadata_refresh'")
        self.assertEqual([(r["outcome"], r["detail"]) for r in rows], [("ok", {"refreshed": ["main"], "failed": {}})])
        persisted = await self.db.fetch("t", "SELECT count(*) AS n FROM metadata_cache WHERE destination = 'main'")
        self.assertGreater(persisted[0]["n"], 0)
