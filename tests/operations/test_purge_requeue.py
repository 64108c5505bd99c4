"""Delete, purge and requeue: final rows only for deletes; requeued rows land in Redis exactly once."""
from __future__ import annotations

from typing import Any

import treq

from tests.operations.support import OperationsTestCase

ALL_STATES = ("queued", "processing", "delivered", "partial", "rejected", "retrying", "failed")
FINAL = ("delivered", "partial", "rejected", "failed")


class DeleteAndPurgeTests(OperationsTestCase):
    """DELETE /logs/{id} and DELETE /logs/purge."""

    async def start_gateway(self) -> Any:
        gateway = await super().start_gateway()
        # 10 old and 3 recent rows of every state
        for status in ALL_STATES:
            await self.gateway.db.execute(
                "test.seed",
                "INSERT INTO submissions (uid, kind, destination, endpoint, payload, status, created_at)"
                " SELECT substr(%s, 1, 1) || lpad((g + %s)::text, 10, '0'), 'aggregate', 'main', '/api/v2/aggregate',"
                " '{}', %s, CASE WHEN g <= 10 THEN timestamptz '2023-06-01T12:00:00+03:00'"
                " ELSE timestamptz '2024-06-01T12:00:00+03:00' END FROM generate_series(1, 13) g",
                (status.upper(), ALL_STATES.index(status) * 100, status))
        return gateway

    async def counts(self) -> dict[str, int]:
        rows = await self.sql("SELECT status, count(*) AS n FROM submissions GROUP BY status")
        return {r["status"]: r["n"] for r in rows}

    async def test_purge_dry_run_then_purge_never_touches_pending(self) -> None:
        """dry_run counts; the purge deletes exactly the old final rows; queued/processing/retrying stay."""
        code, body = await self.call("DELETE", "/api/v2/logs/purge?before=2024-01-01&dry_run=true")
        self.assertEqual(code, 200, body)
        self.assertEqual((body["deleted"], body["dry_run"]), (40, True))
        self.assertEqual(sum((await self.counts()).values()), 13 * 7)
        code, body = await self.call("DELETE", "/api/v2/logs/purge?before=2024-01-01")
        self.assertEqual((code, body["deleted"], body["dry_run"]), (200, 40, False))
        counts = await self.counts()
        for status in ALL_STATES:
            self.assertEqual(counts[status], 3 if status in FINAL else 13, status)

    async def test_purge_by_status_and_refusals(self) -> None:
        """status narrows the purge; a non-final status or a missing date is a 400 and deletes nothing."""
        code, body = await self.call("DELETE", "/api/v2/logs/purge?before=2030-01-01&status=failed")
        self.assertEqual((code, body["deleted"], body["statuses"]), (200, 13, ["failed"]))
        for query in ("before=2030-01-01&status=queued", "before=2030-01-01&status=failed,processing",
                      "status=failed", "before=not-a-date"):
            code, body = await self.call("DELETE", "/api/v2/logs/purge?" + query)
            self.assertEqual(code, 400, query)
        counts = await self.counts()
        self.assertNotIn("failed", counts)
        self.assertEqual(sum(counts.values()), 13 * 6)
        # the original's `date` parameter (RFC 3339) works too
        code, body = await self.call("DELETE", "/api/v2/logs/purge?date=2024-01-01T00:00:00Z&status=delivered")
        self.assertEqual((code, body["deleted"]), (200, 10))

    async def test_delete_one(self) -> None:
        """Only a final submission can be deleted; pending ones answer 409 and stay; unknown ids 404."""
        rows = await self.sql("SELECT DISTINCT ON (status) id, status FROM submissions ORDER BY status, id")
        by_status = {r["status"]: r["id"] for r in rows}
        for status in ("queued", "processing", "retrying"):
            code, body = await self.call("DELETE", f"/api/v2/logs/{by_status[status]}")
            self.assertEqual((code, body["error"]["code"], body["error"]["details"]["status"]),
                             (409, "not_final", status))
        code, body = await self.call("DELETE", f"/api/v2/logs/{by_status['failed']}")
        self.assertEqual((code, body["message"]), (200, "Deleted 1 log(s)"))
        self.assertEqual(await self.sql("SELECT id FROM submissions WHERE id = %s", (by_status["failed"],)), [])
        code, body = await self.call("DELETE", f"/api/v2/logs/{by_status['failed']}")
        self.assertEqual(code, 404)
        self.assertEqual(sum((await self.counts()).values()), 13 * 7 - 1)


class RequeueTests(OperationsTestCase):
    """POST /logs/{id}/requeue, POST /logs/requeue and the original's reenqueue paths."""

    async def ready_ids(self, dest: str = "main") -> list[int]:
        queue = self.gateway.queue
        return [int(x) for x in await queue.redis.call("LRANGE", queue.ready_key(dest), 0, -1)]

    async def insert(self, status: str, n: int, start: int = 1) -> list[int]:
        rows = await self.sql(
            "INSERT INTO submissions (uid, kind, destination, endpoint, payload, status, attempts, job_failures,"
            " error, finished_at) SELECT 'R' || lpad(g::text, 10, '0'), 'aggregate', 'main', '/api/v2/aggregate',"
            " '{}', %s, 3, 3, 'boom', now() FROM generate_series(%s, %s) g RETURNING id",
            (status, start, start + n - 1))
        return [r["id"] for r in rows]

    async def test_requeue_one(self) -> None:
        """A failed row goes back to queued with a `requeued` event naming the operator, and into Redis."""
        [sid] = await self.insert("failed", 1)
        code, body = await self.call("POST", f"/api/v2/logs/{sid}/requeue")
        self.assertEqual(code, 200, body)
        self.assertEqual((body["status"], body["requeued"], body["enqueued"]), ("queued", True, True))
        [row] = await self.sql("SELECT status, attempts, job_failures, error FROM submissions WHERE id = %s", (sid,))
        # The attempt count goes on for the submission's whole life; the retry budget starts again.
        self.assertEqual((row["status"], row["attempts"], row["job_failures"], row["error"]), ("queued", 3, 0, None))
        events = await self.sql("SELECT event, actor FROM submission_events WHERE submission_id = %s", (sid,))
        self.assertEqual([e["event"] for e in events], ["requeued"])
        self.assertTrue(events[0]["actor"])
        self.assertEqual(await self.ready_ids(), [sid])
        code, body = await self.call("POST", f"/api/v2/logs/{sid}/requeue")
        self.assertEqual((code, body["error"]["code"]), (409, "already_pending"))
        self.assertEqual(await self.ready_ids(), [sid])

    async def test_delivered_needs_force(self) -> None:
        """A delivered row is only requeued with force=true."""
        [sid] = await self.insert("delivered", 1)
        code, body = await self.call("POST", f"/api/v2/logs/{sid}/requeue")
        self.assertEqual((code, body["error"]["code"]), (409, "delivered"))
        code, body = await self.call("POST", f"/api/v2/logs/{sid}/requeue?force=true")
        self.assertEqual((code, body["requeued"]), (200, True))
        code, body = await self.call("POST", "/api/v2/logs/999999/requeue")
        self.assertEqual(code, 404)

    async def test_requeue_ids_inline(self) -> None:
        """A small list of ids is requeued in the request; pending rows are skipped and counted."""
        failed = await self.insert("failed", 3)
        queued = await self.insert("queued", 1, start=10)
        code, body = await self.call("POST", "/api/v2/logs/requeue", {"ids": failed + queued})
        self.assertEqual(code, 200, body)
        self.assertEqual((body["matched"], body["requeued"], body["skipped"], body["job_id"]), (4, 3, 1, None))
        self.assertEqual(sorted(body["ids"]), failed)
        self.assertEqual(sorted(await self.ready_ids()), failed)

    async def test_requeue_body_is_validated(self) -> None:
        """ids and filter are exclusive; an empty filter is refused (it would mean every row)."""
        for body in ({}, {"ids": [1], "filter": {"status": "failed"}}, {"ids": []}, {"filter": {}},
                     {"filter": {"q": ""}}, {"filter": {"status": "nope"}}):
            code, answer = await self.call("POST", "/api/v2/logs/requeue", body)
            self.assertEqual(code, 400, (body, answer))

    async def test_original_paths(self) -> None:
        """GET|POST /aggregate/reenqueue/{task_id} and POST /aggregate/reenqueue/batch map onto requeue."""
        ids = await self.insert("rejected", 4)
        code, body = await self.call("GET", f"/api/v2/aggregate/reenqueue/{ids[0]}")
        self.assertEqual((code, body["message"]), (200, f"Re-enqueued task {ids[0]}"))
        code, body = await self.call("POST", "/api/v2/aggregate/reenqueue/R0000000002")
        self.assertEqual((code, body["id"]), (200, ids[1]))
        code, body = await self.call("GET", "/api/v2/aggregate/reenqueue/123456789")
        self.assertEqual(code, 404)
        code, body = await self.call("POST", "/api/v2/aggregate/reenqueue/batch",
                                     {"task_ids": [str(ids[2]), ids[3], str(ids[0]), "nope"], "queue": "dead"})
        self.assertEqual(code, 200, body)
        self.assertEqual((body["reEnqueued"], body["failed"], body["queue"]), (2, 2, "dead"))
        self.assertEqual(sorted(await self.ready_ids()), ids)

    async def test_requeue_50000_by_filter_each_queued_once(self) -> None:
        """50,000 failed rows requeued by filter: a job, progress readable, every id once in Redis,
        and the API keeps answering while it runs."""
        n = 50_000
        await self.gateway.db.execute(
            "test.seed50k",
            "INSERT INTO submissions (uid, kind, destination, endpoint, payload, status, created_at)"
            " SELECT 'F' || lpad(g::text, 10, '0'), 'aggregate', 'main', '/api/v2/aggregate', '{}', 'failed',"
            " timestamptz '2024-01-01T00:00:00Z' + g * interval '1 second' FROM generate_series(1, %s) g", (n,))
        await self.insert("delivered", 5, start=900000)  # not selected
        code, body = await self.call("POST", "/api/v2/logs/requeue", {"filter": {"status": ["failed"]}})
        self.assertEqual(code, 202, body)
        self.assertEqual(body["matched"], n)
        job_id = body["job_id"]
        response = await treq.get(self.url("/health"), persistent=False)  # answered while the job runs
        self.assertEqual(response.code, 200)
        code, progress = await self.call("GET", body["status_url"])
        self.assertEqual(code, 200)
        self.assertIn(progress["status"], ("running", "done"))
        await self.wait_job(job_id)
        code, job = await self.call("GET", f"/api/v2/logs/requeue/{job_id}")
        self.assertEqual((job["status"], job["matched"], job["scanned"], job["requeued"], job["enqueued"],
                          job["progress"]), ("done", n, n, n, n, 1.0))
        ready = await self.ready_ids()
        self.assertEqual(len(ready), n)
        self.assertEqual(len(set(ready)), n)
        queued = await self.sql("SELECT array_agg(id ORDER BY id) AS ids FROM submissions WHERE status = 'queued'")
        self.assertEqual(sorted(ready), queued[0]["ids"])
        [events] = await self.sql("SELECT count(*) AS n, count(DISTINCT submission_id) AS d FROM submission_events"
                                  " WHERE event = 'requeued'")
        self.assertEqual((events["n"], events["d"]), (n, n))
        # requeueing again moves nothing and pushes nothing twice
        code, body = await self.call("POST", "/api/v2/logs/requeue", {"filter": {"status": "failed"}})
        self.assertEqual((code, body["matched"], body["requeued"]), (200, 0, 0))
        self.assertEqual(len(await self.ready_ids()), n)
        code, body = await self.call("GET", "/api/v2/logs/requeue/doesnotexist")
        self.assertEqual(code, 404)
