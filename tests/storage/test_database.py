"""The Database service against a real PostgreSQL."""
from __future__ import annotations

from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase

from dhis2gw.runtime.embedded import free_port
from dhis2gw.storage.database import Database, DatabaseUnavailable, cursor_fetch, json_param, shielded
from tests.support.services import migrated_database


class DatabaseTests(TestCase):
    """Queries, transactions, JSON and cancellation shielding on a real pool."""

    async def asyncSetUp(self) -> None:
        pass

    def setUp(self) -> defer.Deferred[object]:
        self.dsn = migrated_database()
        self.db = Database(reactor, self.dsn, size=2)
        self.db.startService()
        self.addCleanup(self.db.stopService)
        return self.db.started

    async def test_fetch_returns_dict_rows(self) -> None:
        """Rows come back as dicts keyed by column name."""
        rows = await self.db.fetch("t", "SELECT 1 AS one, 'x' AS letter")
        self.assertEqual(rows, [{"one": 1, "letter": "x"}])

    async def test_transaction_commits_and_rolls_back(self) -> None:
        """A transaction commits on return and rolls back on error."""
        async def insert(cursor: object) -> list[dict[str, object]]:
            return await cursor_fetch(
                cursor, "INSERT INTO cron_runs (job, detail) VALUES (%s, %s) RETURNING id, detail",
                ("a", json_param({"n": 1})))

        rows = await self.db.transaction("insert", insert)
        self.assertEqual(rows[0]["detail"], {"n": 1})

        async def failing(cursor: object) -> None:
            await cursor_fetch(cursor, "INSERT INTO cron_runs (job) VALUES ('b')")
            raise ValueError("boom")

        with self.assertRaises(ValueError):
            await self.db.transaction("failing", failing)
        jobs = [r["job"] for r in await self.db.fetch("t", "SELECT job FROM cron_runs ORDER BY id")]
        self.assertEqual(jobs, ["a"])

    async def test_cancel_does_not_reach_the_query(self) -> None:
        """Cancelling the caller's Deferred leaves the statement running to completion."""
        inner = defer.Deferred.fromCoroutine(
            self.db.fetch("slow", "SELECT pg_sleep(0.2), 42 AS answer"))
        outer = shielded(inner)
        outer.cancel()
        self.failureResultOf(outer, defer.CancelledError)
        rows = await inner
        self.assertEqual(rows[0]["answer"], 42)

    async def test_ping(self) -> None:
        """ping() is True on a live pool."""
        self.assertTrue(await self.db.ping())


class UnreachableDatabaseTests(TestCase):
    """A database that is not there."""

    async def test_queries_fail_with_database_unavailable_before_connect(self) -> None:
        """Before the pool is connected, queries raise DatabaseUnavailable (mapped to 503)."""
        db = Database(reactor, f"postgresql://postgres@127.0.0.1:{free_port()}/none", size=1)
        with self.assertRaises(DatabaseUnavailable):
            await db.fetch("t", "SELECT 1")


class ReconnectionStopsTests(TestCase):
    """A closed pool leaves no reconnection scheduled (a stopped gateway leaves the reactor clean)."""

    def test_close_stops_reconnecting(self) -> None:
        """A dead connection reconnects on the clock until its pool is closed; then nothing is left."""
        import psycopg2
        from twisted.internet.task import Clock
        from twisted.python.failure import Failure

        from dhis2gw.storage.database import _Pool

        clock = Clock()
        pool = _Pool(clock, "dbname=unused", 1)
        connection = next(iter(pool.connections))
        attempts: list[int] = []

        def connect(*_: object) -> defer.Deferred[None]:
            attempts.append(1)
            return defer.fail(psycopg2.OperationalError("server closed the connection"))

        connection.connect = connect  # type: ignore[method-assign]
        connection.close = lambda: None  # type: ignore[method-assign]  # never connected: nothing to close
        connection.detector.setReconnectable(connection)
        connection.detector.checkForDeadConnection(Failure(psycopg2.OperationalError("gone")))
        clock.advance(0.2)
        clock.advance(0.5)
        self.assertEqual(len(attempts), 2)
        self.assertEqual(len(clock.getDelayedCalls()), 1)  # the next try is scheduled
        pool.close()
        self.assertEqual(clock.getDelayedCalls(), [])
        clock.advance(60)
        self.assertEqual(len(attempts), 2)
        self.assertEqual(self.flushLoggedErrors(), [])
