"""The migration runner against a real PostgreSQL."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import psycopg2
from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase

from dhis2gw.storage.migrations import MigrationError, load_migrations, migrate, schema_version
from tests.support.services import MIGRATIONS, create_database, drop_database


def _tables(dsn: str) -> set[str]:
    conn = psycopg2.connect(dsn)
    with conn, conn.cursor() as cur:
        cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        names = {r[0] for r in cur.fetchall()}
    conn.close()
    return names


class MigrationRunnerTests(TestCase):
    """Migrations apply once, are idempotent, refuse newer schemas and never collide."""

    def setUp(self) -> None:
        self.dsn = create_database()
        self.addCleanup(drop_database, self.dsn)

    async def test_applies_every_migration_once(self) -> None:
        """A fresh database gets every file applied and the tables of DESIGN.md §4 exist."""
        report = await migrate(self.dsn, MIGRATIONS, reactor)
        versions = tuple(m.version for m in load_migrations(MIGRATIONS))
        self.assertEqual(report.applied, versions)
        self.assertEqual(await schema_version(self.dsn, reactor), max(versions))
        tables = _tables(self.dsn)
        for table in ("submissions", "submission_events", "request_log", "users", "api_tokens",
                      "refresh_tokens", "dhis2_mappings", "organisation_units", "orgunit_propagation",
                      "schema_migrations"):
            self.assertIn(table, tables)

    async def test_second_run_is_a_no_op(self) -> None:
        """Running the runner again applies nothing and keeps the version."""
        first = await migrate(self.dsn, MIGRATIONS, reactor)
        second = await migrate(self.dsn, MIGRATIONS, reactor)
        self.assertEqual(second.applied, ())
        self.assertEqual(second.current, first.current)

    async def test_refuses_a_newer_database(self) -> None:
        """A database migrated by a newer gateway (unknown higher version) stops start-up."""
        await migrate(self.dsn, MIGRATIONS, reactor)
        conn = psycopg2.connect(self.dsn)
        with conn, conn.cursor() as cur:
            cur.execute("INSERT INTO schema_migrations (version, name, checksum) VALUES (9999, '9999_future.sql', 'x')")
        conn.close()
        with self.assertRaises(MigrationError) as ctx:
            await migrate(self.dsn, MIGRATIONS, reactor)
        self.assertIn("newer", str(ctx.exception))

    async def test_refuses_an_edited_migration(self) -> None:
        """Changing an applied file is detected by its checksum."""
        work = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, work)
        (work / "0001_a.sql").write_text("CREATE TABLE a (id int);")
        await migrate(self.dsn, work, reactor)
        (work / "0001_a.sql").write_text("CREATE TABLE a (id bigint);")
        with self.assertRaises(MigrationError) as ctx:
            await migrate(self.dsn, work, reactor)
        self.assertIn("checksum", str(ctx.exception))

    async def test_failed_migration_rolls_back(self) -> None:
        """A broken file leaves nothing half-applied and names the file."""
        work = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, work)
        (work / "0001_a.sql").write_text("CREATE TABLE a (id int);")
        (work / "0002_b.sql").write_text("CREATE TABLE b (id int); SELECT no_such_function();")
        with self.assertRaises(MigrationError) as ctx:
            await migrate(self.dsn, work, reactor)
        self.assertIn("0002_b.sql", str(ctx.exception))
        self.assertIn("a", _tables(self.dsn))
        self.assertNotIn("b", _tables(self.dsn))
        self.assertEqual(await schema_version(self.dsn, reactor), 1)

    async def test_concurrent_runs_do_not_collide(self) -> None:
        """Two runners started together: one applies everything, the other nothing, no error."""
        reports = await defer.gatherResults([
            defer.Deferred.fromCoroutine(migrate(self.dsn, MIGRATIONS, reactor)),
            defer.Deferred.fromCoroutine(migrate(self.dsn, MIGRATIONS, reactor)),
        ])
        applied = sorted(len(r.applied) for r in reports)
        self.assertEqual(applied, [0, len(load_migrations(MIGRATIONS))])
        conn = psycopg2.connect(self.dsn)
        with conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM schema_migrations")
            self.assertEqual(cur.fetchone()[0], len(load_migrations(MIGRATIONS)))
        conn.close()
