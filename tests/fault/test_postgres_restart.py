"""Fault test: the pool survives a PostgreSQL restart (a private server is stopped and started)."""
from __future__ import annotations

import shutil
import tempfile

from twisted.internet import defer, reactor, threads
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from dhis2gw.runtime.embedded import EmbeddedPostgres
from dhis2gw.storage.database import Database, DatabaseUnavailable


class PostgresRestartTests(TestCase):
    """Stop PostgreSQL under a running pool, start it again, and the pool serves again."""

    timeout = 120

    def setUp(self) -> defer.Deferred[object]:
        self.state = tempfile.mkdtemp(prefix="dhis2gw-pgfault-")
        self.addCleanup(shutil.rmtree, self.state, True)
        self.pg = EmbeddedPostgres(self.state)
        self.pg.start()
        self.addCleanup(self.pg.stop, "immediate")
        self.db = Database(reactor, self.pg.uri, size=3)
        self.db.startService()
        self.addCleanup(self.db.stopService)
        return self.db.started

    async def test_pool_recovers_after_restart(self) -> None:
        """During the outage queries fail with DatabaseUnavailable; after it every connection works."""
        self.assertEqual((await self.db.fetch("t", "SELECT 1 AS x"))[0]["x"], 1)
        await threads.deferToThread(self.pg.stop, "fast")
        failures = 0
        for _ in range(3):
            try:
                await self.db.fetch("t", "SELECT 1 AS x")
            except DatabaseUnavailable:
                failures += 1
        self.assertEqual(failures, 3)
        await threads.deferToThread(self.pg.start)
        recovered = False
        for _ in range(150):  # up to ~15 s: the detector reconnects on its own schedule
            try:
                rows = await defer.gatherResults([
                    defer.Deferred.fromCoroutine(self.db.fetch("t", "SELECT 2 AS x")) for _ in range(6)],
                    consumeErrors=True)
                if all(r[0]["x"] == 2 for r in rows):
                    recovered = True
                    break
            except defer.FirstError as e:
                e.subFailure.trap(DatabaseUnavailable)
            await deferLater(reactor, 0.1, lambda: None)
        self.assertTrue(recovered, "the pool did not recover after PostgreSQL came back")
