"""Fault test: ``kill -9`` of the gateway during an async tracker import, then a restart.

A real gateway process delivers one tracker submission (seeded in PostgreSQL, its UIDs already
assigned as ingest would) to a real simulator process whose async jobs take several seconds.
The gateway is killed as soon as it has persisted the DHIS2 job id; the restarted gateway must
resume polling that job — not post the payload again — and end the submission ``delivered``.
"""
from __future__ import annotations

import json
import signal
import time
from typing import Any

import psycopg2
from twisted.trial.unittest import SynchronousTestCase

from dhis2gw.dhis2.uids import generate_uid
from tests.support.processes import GatewayProcess, SimulatorProcess, wait_until
from tests.support.services import delete_redis_prefix, migrated_database, redis_prefix, test_environ

TET_PERSON, TEA_FIRST, TEA_LAST, TEA_DOB = "wUDUIqHvKBT", "Nx35aDI8hlO", "yniiXK6gaAZ", "gG0gOd8XsCL"
PR_CHILD, PS_BIRTH, DE_BIRTH_WEIGHT, FAC_NR = "x77Cvs1U2W8", "mfldQTsPucY", "EUBJhFXsCXe", "ty5AJ6ZU5f7"
JOB_DELAY = 12.0


def tracker_payload(te: str, en: str, ev: str) -> dict[str, Any]:
    """One person, enrollment and birth event with the given UIDs (as the tracker kind prepares them)."""
    return {"trackedEntities": [{
        "trackedEntity": te, "trackedEntityType": TET_PERSON, "orgUnit": FAC_NR,
        "attributes": [{"attribute": TEA_FIRST, "value": "Kito"}, {"attribute": TEA_LAST, "value": "Mwangi"},
                       {"attribute": TEA_DOB, "value": "2024-02-01"}],
        "enrollments": [{
            "enrollment": en, "trackedEntity": te, "program": PR_CHILD, "orgUnit": FAC_NR,
            "enrolledAt": "2024-02-02", "status": "ACTIVE",
            "events": [{"event": ev, "enrollment": en, "program": PR_CHILD, "programStage": PS_BIRTH,
                        "orgUnit": FAC_NR, "occurredAt": "2024-02-02", "status": "COMPLETED",
                        "dataValues": [{"dataElement": DE_BIRTH_WEIGHT, "value": "2900"}]}]}]}]}


class TrackerCrashTests(SynchronousTestCase):
    """Gateway killed while DHIS2 runs its tracker job."""

    def setUp(self) -> None:
        self.sim = SimulatorProcess("2.40")
        self.sim.start()
        self.addCleanup(self.sim.stop)
        self.sim.control("config", {"job_delay": JOB_DELAY})
        self.dsn = migrated_database()
        self.prefix = redis_prefix()
        self.addCleanup(delete_redis_prefix, self.prefix)
        self.env = test_environ(
            self.dsn, self.prefix, dhis2_base_url=self.sim.base_url, dhis2_user="admin", dhis2_password="district",
            DHIS2GW_SERVER_PORT="0", DHIS2GW_TRACKER_ASYNC_THRESHOLD="0",  # every tracker import is async
            DHIS2GW_QUEUE_LEASE_SECONDS="3", DHIS2GW_QUEUE_HEARTBEAT_SECONDS="1",
            DHIS2GW_REQUEST_PROCESS_INTERVAL="0.5", DHIS2GW_BACKOFF_BASE="0.5", DHIS2GW_BACKOFF_CAP="2",
            DHIS2GW_LOG_TO_STDOUT="true")

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        conn = psycopg2.connect(self.dsn)
        try:
            with conn, conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()

    def seed(self, payload: dict[str, Any]) -> int:
        rows = self.query(
            "INSERT INTO submissions (uid, kind, destination, endpoint, payload, dhis2_payload, import_params,"
            " value_count) VALUES (%s, 'tracker', 'main', '/api/v2/tracker', %s, %s, '{}', 3) RETURNING id",
            (generate_uid(), json.dumps(payload), json.dumps(payload)))
        return int(rows[0][0])

    def row(self, sid: int) -> tuple[Any, ...]:
        return self.query("SELECT status, dhis2_job_id, attempts FROM submissions WHERE id = %s", (sid,))[0]

    def sim_requests(self) -> list[dict[str, Any]]:
        return self.sim.control("store")["requests"]

    def test_restart_resumes_polling_without_reposting(self) -> None:
        """Exactly one POST /api/tracker; the restarted gateway polls the stored job; one of each object."""
        te, en, ev = generate_uid(), generate_uid(), generate_uid()
        sid = self.seed(tracker_payload(te, en, ev))
        first = GatewayProcess(self.env)
        first.start()
        self.addCleanup(first.stop)
        wait_until(lambda: self.row(sid)[1] is not None, 60, what="the DHIS2 job id to be persisted")
        job_id = self.row(sid)[1]
        first.kill(signal.SIGKILL)
        killed_at = time.time()
        status, stored_job, attempts = self.row(sid)
        self.assertEqual((status, stored_job, attempts), ("processing", job_id, 1))
        store = self.sim.control("store")
        self.assertEqual(store["trackedEntities"], [])  # the job is still running in "DHIS2"

        second = GatewayProcess(dict(self.env, DHIS2GW_SERVER_PORT=str(first.port)))
        second.start()
        self.addCleanup(second.stop)
        wait_until(lambda: self.row(sid)[0] in ("delivered", "partial", "rejected", "failed"), 90,
                   what="the submission to end")
        status, stored_job, attempts = self.row(sid)
        self.assertEqual(status, "delivered", second.output()[-3000:])
        self.assertIsNone(stored_job)
        self.assertEqual(attempts, 2)

        requests = self.sim_requests()
        posts = [r for r in requests if r["method"] == "POST" and r["path"].rstrip("/").endswith("/tracker")]
        self.assertEqual(len(posts), 1, posts)
        self.assertEqual(posts[0]["query"]["async"], ["true"])
        polls_after = [r for r in requests if r["path"].startswith(f"/api/tracker/jobs/{job_id}")
                       and r["time"] > killed_at]
        self.assertTrue(polls_after, "the restarted gateway did not poll the stored job")
        store = self.sim.control("store")
        self.assertEqual([o["trackedEntity"] for o in store["trackedEntities"]], [te])
        self.assertEqual([o["enrollment"] for o in store["enrollments"]], [en])
        self.assertEqual([o["event"] for o in store["events"]], [ev])
        self.assertEqual({c["key"]: c["count"] for c in store["writeCounts"]}, {te: 1, en: 1, ev: 1})
        created = self.query("SELECT import_count FROM submissions WHERE id = %s", (sid,))[0][0]
        self.assertEqual(created["created"], 3)
        events = [e for (e,) in self.query("SELECT event FROM submission_events WHERE submission_id = %s"
                                            " ORDER BY id", (sid,))]
        self.assertEqual(events[-1], "delivered", events)
        self.assertEqual(events.count("processing"), 2, events)
        self.assertIn(f"resuming DHIS2 job {job_id}", second.output())
