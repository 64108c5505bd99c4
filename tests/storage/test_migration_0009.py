"""Migration 0009 renumbers the attempts of submissions requeued under the old numbering."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import psycopg2
from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from dhis2gw.storage.migrations import migrate
from tests.support.services import MIGRATIONS, create_database, drop_database


class AttemptRenumberingTests(TestCase):
    """Old rows: attempts 1, 2, requeued, 1, 2 → 1, 2, requeued, 3, 4 and ``attempts`` = 4."""

    def setUp(self) -> None:
        self.dsn = create_database()
        self.addCleanup(drop_database, self.dsn)

    async def test_old_trail_is_renumbered(self) -> None:
        """The history a requeue used to overwrite is numbered per submission after the upgrade."""
        before = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, before, True)
        for f in sorted(MIGRATIONS.glob("*.sql")):
            if int(f.name[:4]) < 9:
                shutil.copy(f, before / f.name)
        await migrate(self.dsn, before, reactor)
        conn = psycopg2.connect(self.dsn)
        self.addCleanup(conn.close)
        with conn, conn.cursor() as cur:
            cur.execute("INSERT INTO submissions (uid, kind, destination, endpoint, payload, status, attempts)"
                        " VALUES ('AbcdEfghIj1', 'aggregate', 'main', '/api/v2/aggregate', '{}', 'delivered', 2)"
                        " RETURNING id")
            sid = cur.fetchone()[0]
            for event, attempt in [("queued", None), ("processing", 1), ("retrying", 1), ("processing", 2),
                                   ("failed", 2), ("requeued", None), ("processing", 1), ("retrying", 1),
                                   ("processing", 2), ("delivered", 2)]:
                cur.execute("INSERT INTO submission_events (submission_id, event, attempt) VALUES (%s, %s, %s)",
                            (sid, event, attempt))
        await migrate(self.dsn, MIGRATIONS, reactor)
        with conn, conn.cursor() as cur:
            cur.execute("SELECT event, attempt FROM submission_events WHERE submission_id = %s ORDER BY id", (sid,))
            self.assertEqual([a for _, a in cur.fetchall()], [None, 1, 1, 2, 2, None, 3, 3, 4, 4])
            cur.execute("SELECT attempts FROM submissions WHERE id = %s", (sid,))
            self.assertEqual(cur.fetchone()[0], 4)
