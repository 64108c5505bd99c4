"""Imported history is ordinary history: the logs API lists, filters and shows it."""
from __future__ import annotations

import tempfile
from datetime import datetime
from pathlib import Path

from twisted.internet import threads

from dhis2gw.legacy.importer import import_legacy
from tests.legacy.support import LEGACY_TZ, connect, legacy_database, legacy_log_row, seed_log
from tests.operations.support import OperationsTestCase


class ImportedHistoryTests(OperationsTestCase):
    """A gateway (API role) over a database that import_legacy filled."""

    async def test_logs_list_filter_and_detail(self) -> None:
        """q=legacy-<id> finds a row, status filters see the mapped states, the detail shows the imported event."""
        legacy = legacy_database(7)
        conn = connect(legacy)
        ids = seed_log(conn, [legacy_log_row(i, status, datetime(2025, 1, 1, 8, 0))
                              for i, status in enumerate(["SUCCESS", "WARNING", "queued", "failed"])])
        conn.close()
        workdir = Path(tempfile.mkdtemp(prefix="legacy-history-"))
        await threads.deferToThread(import_legacy, legacy, self.dsn, timezone=LEGACY_TZ,
                                    servers_out=str(workdir / "s.yml"), env_out=str(workdir / "s.env"))
        status, page = await self.call("GET", f"/api/v2/logs?q=legacy-{ids[1]}")
        self.assertEqual(status, 200, page)
        (item,) = page["items"]
        self.assertEqual((item["status"], item["org_unit"], item["period"]), ("partial", "ty5AJ6ZU5f7", "202402"))
        status, page = await self.call("GET", "/api/v2/logs?status=failed")
        self.assertEqual(sorted(i["id"] for i in page["items"]), sorted(
            [r["id"] for r in await self.sql("SELECT id FROM submissions WHERE status = 'failed'")]))
        self.assertEqual(len(page["items"]), 2)
        status, detail = await self.call("GET", f"/api/v2/logs/{item['id']}")
        self.assertEqual(status, 200, detail)
        self.assertEqual([e["event"] for e in detail["events"]], ["imported"])
        self.assertIn(f"submission_log #{ids[1]}", detail["events"][0]["detail"])
        self.assertEqual(detail["response"]["status"], "WARNING")
