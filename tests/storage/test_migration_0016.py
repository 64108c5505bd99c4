"""Migration 0016 gives existing users no extra permission: no callbacks, no scope limit, no delete."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import psycopg2
from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from dhis2gw.storage.migrations import migrate
from tests.support.services import MIGRATIONS, create_database, drop_database


class SecurityColumnsTests(TestCase):
    """A user created before 0016 keeps working and gains the safe defaults."""

    def setUp(self) -> None:
        self.dsn = create_database()
        self.addCleanup(drop_database, self.dsn)

    async def test_existing_users_get_safe_defaults(self) -> None:
        """callback_allowed false, empty scopes (no limit, as before), may_delete false."""
        before = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, before, True)
        for f in sorted(MIGRATIONS.glob("*.sql")):
            if int(f.name[:4]) < 16:
                shutil.copy(f, before / f.name)
        await migrate(self.dsn, before, reactor)
        conn = psycopg2.connect(self.dsn)
        self.addCleanup(conn.close)
        with conn, conn.cursor() as cur:
            cur.execute("INSERT INTO users (uid, username, role, password_hash) VALUES"
                        " ('OldUser0001', 'old', 'submitter', 'x')")
        await migrate(self.dsn, MIGRATIONS, reactor)
        with conn, conn.cursor() as cur:
            cur.execute("SELECT callback_allowed, orgunit_scope, dataset_scope, may_delete FROM users"
                        " WHERE uid = 'OldUser0001'")
            self.assertEqual(cur.fetchone(), (False, [], [], False))
