"""A test case over an empty database of its own, for the migration runner and for each migration.

``migrations_dir`` writes a directory of migrations for a test (or copies the shipped ones below a
version), ``migrate_below``/``migrate_all`` bring the database to a version, and ``sql`` runs one
statement on a connection of its own (blocking: the reactor has nothing else to do meanwhile).
"""
from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from dhis2gw.storage.migrations import MigrationReport, migrate
from tests.support.backends import run_sql
from tests.support.services import MIGRATIONS, create_database, drop_database


class MigrationCase(TestCase):
    """``self.dsn``: an empty database, dropped after the test."""

    def setUp(self) -> None:
        self.dsn = create_database()
        self.addCleanup(drop_database, self.dsn)

    def migrations_dir(self, files: dict[str, str] | None = None, below: int | None = None) -> Path:
        """A temporary directory holding ``files`` (name -> SQL) and the shipped migrations numbered below ``below``."""
        directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, directory, True)
        for name, sql in (files or {}).items():
            (directory / name).write_text(sql)
        if below is not None:
            for f in sorted(MIGRATIONS.glob("*.sql")):
                if int(f.name[:4]) < below:
                    shutil.copy(f, directory / f.name)
        return directory

    async def migrate_below(self, version: int) -> MigrationReport:
        """Apply the shipped migrations numbered below ``version`` (the schema an older release left)."""
        return await migrate(self.dsn, self.migrations_dir(below=version), reactor)

    async def migrate_all(self) -> MigrationReport:
        """Apply every shipped migration not applied yet."""
        return await migrate(self.dsn, MIGRATIONS, reactor)

    def sql(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement on the test's database (blocking); the rows it returns."""
        return run_sql(self.dsn, statement, params)
