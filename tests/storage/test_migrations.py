"""The migration runner against a real PostgreSQL."""
from __future__ import annotations

from twisted.internet import defer, reactor

from dhis2gw.storage.migrations import MigrationError, load_migrations, migrate, schema_version
from tests.storage.migration_case import MigrationCase
from tests.support.services import MIGRATIONS


class MigrationRunnerTests(MigrationCase):
    """Migrations apply once, are idempotent, refuse newer schemas and never collide."""

    def tables(self) -> set[str]:
        return {name for (name,) in self.sql("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}

    async def test_applies_every_migration_once(self) -> None:
        """A fresh database gets every file applied and the tables of DESIGN.md §4 exist."""
        report = await self.migrate_all()
        versions = tuple(m.version for m in load_migrations(MIGRATIONS))
        self.assertEqual(report.applied, versions)
        self.assertEqual(await schema_version(self.dsn, reactor), max(versions))
        tables = self.tables()
        for table in ("submissions", "submission_events", "request_log", "users", "api_tokens",
                      "refresh_tokens", "dhis2_mappings", "organisation_units", "orgunit_propagation",
                      "schema_migrations"):
            self.assertIn(table, tables)

    async def test_second_run_is_a_no_op(self) -> None:
        """Running the runner again applies nothing and keeps the version."""
        first = await self.migrate_all()
        second = await self.migrate_all()
        self.assertEqual(second.applied, ())
        self.assertEqual(second.current, first.current)

    async def test_refuses_a_newer_database(self) -> None:
        """A database migrated by a newer gateway (unknown higher version) stops start-up."""
        await self.migrate_all()
        self.sql("INSERT INTO schema_migrations (version, name, checksum) VALUES (9999, '9999_future.sql', 'x')")
        with self.assertRaises(MigrationError) as ctx:
            await self.migrate_all()
        self.assertIn("newer", str(ctx.exception))

    async def test_refuses_an_edited_migration(self) -> None:
        """Changing an applied file is detected by its checksum."""
        work = self.migrations_dir({"0001_a.sql": "CREATE TABLE a (id int);"})
        await migrate(self.dsn, work, reactor)
        (work / "0001_a.sql").write_text("CREATE TABLE a (id bigint);")
        with self.assertRaises(MigrationError) as ctx:
            await migrate(self.dsn, work, reactor)
        self.assertIn("checksum", str(ctx.exception))

    async def test_failed_migration_rolls_back(self) -> None:
        """A broken file leaves nothing half-applied and names the file."""
        work = self.migrations_dir({"0001_a.sql": "CREATE TABLE a (id int);",
                                    "0002_b.sql": "CREATE TABLE b (id int); SELECT no_such_function();"})
        with self.assertRaises(MigrationError) as ctx:
            await migrate(self.dsn, work, reactor)
        self.assertIn("0002_b.sql", str(ctx.exception))
        self.assertIn("a", self.tables())
        self.assertNotIn("b", self.tables())
        self.assertEqual(await schema_version(self.dsn, reactor), 1)

    async def test_concurrent_runs_do_not_collide(self) -> None:
        """Two runners started together: one applies everything, the other nothing, no error."""
        reports = await defer.gatherResults([
            defer.Deferred.fromCoroutine(migrate(self.dsn, MIGRATIONS, reactor)),
            defer.Deferred.fromCoroutine(migrate(self.dsn, MIGRATIONS, reactor)),
        ])
        applied = sorted(len(r.applied) for r in reports)
        self.assertEqual(applied, [0, len(load_migrations(MIGRATIONS))])
        self.assertEqual(self.sql("SELECT count(*) FROM schema_migrations"), [(len(load_migrations(MIGRATIONS)),)])
