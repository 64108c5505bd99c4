"""Migration 0019 gives dhis2_mappings the original's ``dimension_type`` ('none' for existing rows)."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import psycopg2
from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from dhis2gw.storage.migrations import migrate
from tests.support.services import MIGRATIONS, create_database, drop_database


class DimensionTypeTests(TestCase):
    """A mapping written before the migration reads dimension_type 'none' after it."""

    def setUp(self) -> None:
        self.dsn = create_database()
        self.addCleanup(drop_database, self.dsn)

    async def test_existing_rows_get_none(self) -> None:
        """Existing and new rows default to 'none'; a value is kept."""
        before = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, before, True)
        for f in sorted(MIGRATIONS.glob("*.sql")):
            if int(f.name[:4]) < 19:
                shutil.copy(f, before / f.name)
        await migrate(self.dsn, before, reactor)
        conn = psycopg2.connect(self.dsn)
        self.addCleanup(conn.close)
        with conn, conn.cursor() as cur:
            cur.execute("INSERT INTO dhis2_mappings (uid, code, dataelement) VALUES ('mOldMapping', 'OLD', 'x')")
        await migrate(self.dsn, MIGRATIONS, reactor)
        with conn, conn.cursor() as cur:
            cur.execute("INSERT INTO dhis2_mappings (uid, code, dataelement, dimension_type)"
                        " VALUES ('mNewMapping', 'NEW', 'x', 'attribution'), ('mDefaulted1', 'DEF', 'x', DEFAULT)")
            cur.execute("SELECT code, dimension_type FROM dhis2_mappings ORDER BY code")
            self.assertEqual(cur.fetchall(), [("DEF", "none"), ("NEW", "attribution"), ("OLD", "none")])
