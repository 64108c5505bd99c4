"""Migration 0009 renumbers the attempts of submissions requeued under the old numbering."""
from __future__ import annotations

from tests.storage.migration_case import MigrationCase


class AttemptRenumberingTests(MigrationCase):
    """Old rows: attempts 1, 2, requeued, 1, 2 → 1, 2, requeued, 3, 4 and ``attempts`` = 4."""

    async def test_old_trail_is_renumbered(self) -> None:
        """The history a requeue used to overwrite is numbered per submission after the upgrade."""
        await self.migrate_below(9)
        [(sid,)] = self.sql("INSERT INTO submissions (uid, kind, destination, endpoint, payload, status, attempts)"
                            " VALUES ('AbcdEfghIj1', 'aggregate', 'main', '/api/v2/aggregate', '{}', 'delivered', 2)"
                            " RETURNING id")
        for event, attempt in [("queued", None), ("processing", 1), ("retrying", 1), ("processing", 2),
                               ("failed", 2), ("requeued", None), ("processing", 1), ("retrying", 1),
                               ("processing", 2), ("delivered", 2)]:
            self.sql("INSERT INTO submission_events (submission_id, event, attempt) VALUES (%s, %s, %s)",
                     (sid, event, attempt))
        await self.migrate_all()
        trail = self.sql("SELECT event, attempt FROM submission_events WHERE submission_id = %s ORDER BY id", (sid,))
        self.assertEqual([a for _, a in trail], [None, 1, 1, 2, 2, None, 3, 3, 4, 4])
        self.assertEqual(self.sql("SELECT attempts FROM submissions WHERE id = %s", (sid,)), [(4,)])
