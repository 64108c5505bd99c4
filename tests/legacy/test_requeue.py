"""``import-legacy --requeue``: what the Go dhis2gw never delivered reaches DHIS2 (the simulator) once."""
from __future__ import annotations

import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from twisted.internet import reactor, threads
from twisted.internet.task import deferLater

from tests.legacy.support import connect, legacy_database, legacy_log_row, run_import, seed_log, seed_mapping
from tests.support.delivery import DE_ANC1, DE_OPD, FACILITIES, DeliveryRig

COC = "HllvX50cXC0"


class RequeueTests(DeliveryRig):
    """A legacy database with queued, failed and delivered rows, imported into the rig's database."""

    def legacy(self) -> tuple[str, list[dict[str, Any]]]:
        dsn = legacy_database(7)
        conn = connect(dsn)
        seed_mapping(conn, "L_OPD", DE_OPD)        # the original's scope: default/default
        seed_mapping(conn, "L_ANC", DE_ANC1)
        rows = []
        for i, status in enumerate(["queued"] * 5 + ["failed"] * 3 + ["SUCCESS"] * 2 + ["ERROR"]):
            row = legacy_log_row(i, status, datetime(2025, 2, 1, 9, 0))
            row["payload"] = {"orgUnit": FACILITIES[i % len(FACILITIES)], "period": f"2024{i + 1:02d}",
                              "dataSet": "uFaVMlw4qxK", "dataValues": {"L_OPD": 1000 + i, "L_ANC": i}}
            rows.append(row)
        seed_log(conn, rows)
        conn.close()
        return dsn, rows

    async def import_(self, legacy: str, *extra: str) -> str:
        if not hasattr(self, "workdir"):
            self.workdir = Path(tempfile.mkdtemp(prefix="legacy-requeue-"))
        result = await threads.deferToThread(run_import, self.dsn, legacy, self.workdir, *extra, prefix=self.prefix)
        self.assertEqual(result.returncode, 0, result.stderr)
        return str(result.stdout)

    def posts(self) -> int:
        return sum(1 for r in self.sim.store.requests if r.path.endswith("/dataValueSets"))

    async def test_requeue_delivers_the_undelivered_rows_once(self) -> None:
        """Queued and failed rows are delivered once each; delivered/rejected ones are not; a rerun sends nothing."""
        legacy, rows = self.legacy()
        plain = await self.import_(legacy)
        self.assertIn("8 submission(s) were queued or failed", plain)
        self.assertIn("run again with --requeue", plain)
        self.assertEqual(set((await self.statuses()).values()), {"failed", "delivered", "rejected"})

        requeued = await self.import_(legacy, "--requeue")
        self.assertIn("requeue: selected 8, requeued 8, enqueued 8, not_pushed 0", requeued)
        self.assertIn("changes: 0", requeued)  # the import itself wrote nothing new
        self.make_dispatcher()
        ids = [r["id"] for r in await self.db.fetch(
            "t", "SELECT s.id FROM submissions s JOIN submission_events e ON e.submission_id = s.id"
            " WHERE e.event = 'requeued' AND e.actor = 'import-legacy' ORDER BY s.id")]
        self.assertEqual(len(ids), 8)
        final = await self.wait_final(ids)
        self.assertEqual(set(final.values()), {"delivered"})
        self.assertEqual(self.posts(), 8)
        stored = self.sim.store.data_values
        for i, row in enumerate(rows[:8]):
            payload = row["payload"]
            self.assertEqual(stored[(DE_OPD, payload["period"], payload["orgUnit"], COC, COC)].value, str(1000 + i))
            self.assertEqual(stored[(DE_ANC1, payload["period"], payload["orgUnit"], COC, COC)].value, str(i))
        self.assertEqual(len(stored), 16)  # nothing of the rows the original had delivered or seen rejected
        self.assertEqual(await self.events(ids[0]), ["imported", "requeued", "processing", "delivered"])

        again = await self.import_(legacy, "--requeue")
        self.assertIn("requeue: selected 0, requeued 0, enqueued 0", again)
        await deferLater(reactor, 1.0, lambda: None)  # give a stray job time to show up
        self.assertEqual(self.posts(), 8)
