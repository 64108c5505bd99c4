"""POST /api/v2/aggregate and GET /api/v2/submissions/{id} through a whole gateway and the simulator."""
from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.task import deferLater

from dhis2gw.dhis2.uids import generate_uid
from tests.support.gateway import GatewayTestCase

FAC = "ty5AJ6ZU5f7"
DE_OPD = "Re46C6Apebu"
DE_ANC1 = "sHyMCqP5u8T"
DS = "uFaVMlw4qxK"
COC = "HllvX50cXC0"


class IngestTests(GatewayTestCase):
    """The ingest API with real auth, PostgreSQL, Redis and a simulated DHIS2."""

    with_simulator = True
    timeout = 120

    async def add_mapping(self, code: str, de: str, source: str = "") -> None:
        await self.gateway.db.execute(
            "test.mapping", "INSERT INTO dhis2_mappings (uid, code, what, dataelement, source_name)"
            " VALUES (%s, %s, 'de', %s, %s)", (generate_uid(), code, de, source))

    async def wait_status(self, sid: int, token: str, final: tuple[str, ...] = ("delivered", "partial",
                                                                                   "rejected", "failed")) -> Any:
        for _ in range(400):
            code, body = await self.request_json("GET", f"/api/v2/submissions/{sid}", token=token)
            if body.get("status") in final:
                return body
            await deferLater(reactor, 0.05, lambda: None)
        self.fail(f"submission {sid} not final: {body}")

    async def test_simplified_submission_end_to_end(self) -> None:
        """202 with the prepared payload; the value arrives; the status shows events and counts."""
        await self.add_mapping("OPD", DE_OPD)
        token = await self.user_token("clinic", "submitter")
        code, body = await self.request_json("POST", "/api/v2/aggregate",
                                             {"orgUnit": FAC, "period": "202401", "dataSet": DS,
                                              "dataValues": {"OPD": 1500000}}, token=token)
        self.assertEqual(code, 202, body)
        self.assertEqual(body["status"], "queued")
        self.assertEqual(body["payload"]["dataValues"], [{"dataElement": DE_OPD, "value": "1500000"}])
        self.assertEqual(body["status_url"], f"/api/v2/submissions/{body['submission_id']}")
        self.assertEqual(body["task_id"], str(body["submission_id"]))
        final = await self.wait_status(body["submission_id"], token)
        self.assertEqual(final["status"], "delivered")
        self.assertEqual([e["event"] for e in final["events"]], ["queued", "processing", "delivered"])
        self.assertEqual(self.sim.store.data_values[(DE_OPD, "202401", FAC, COC, COC)].value, "1500000")

    async def test_unmapped_codes_are_a_422_naming_them(self) -> None:
        """Unknown codes are refused with their names; nothing is queued."""
        await self.add_mapping("OPD", DE_OPD)
        token = await self.user_token("clinic", "submitter")
        code, body = await self.request_json("POST", "/api/v2/aggregate",
                                             {"orgUnit": FAC, "period": "202401",
                                              "dataValues": {"OPD": 1, "NOPE": 2, "ALSO_NOPE": 3}}, token=token)
        self.assertEqual(code, 422)
        self.assertEqual(body["error"]["code"], "unmapped_codes")
        self.assertEqual(body["error"]["details"]["unmapped"], ["NOPE", "ALSO_NOPE"])
        self.assertEqual(await self.gateway.db.fetch("t", "SELECT id FROM submissions"), [])

    async def test_schema_errors_list_every_field(self) -> None:
        """A 400 lists each invalid field with its path."""
        token = await self.user_token("clinic", "submitter")
        code, body = await self.request_json("POST", "/api/v2/aggregate",
                                             {"orgUnit": FAC, "period": 202401, "dataValues": {"A": [1]}},
                                             token=token)
        self.assertEqual(code, 400)
        fields = {e["field"] for e in body["error"]["details"]["errors"]}
        self.assertIn("period", fields)
        self.assertIn("dataValues/A", fields)

    async def test_bad_period_is_refused(self) -> None:
        """Period strings are validated for every DHIS2 period type (202413 is no month)."""
        await self.add_mapping("OPD", DE_OPD)
        token = await self.user_token("clinic", "submitter")
        code, body = await self.request_json("POST", "/api/v2/aggregate",
                                             {"orgUnit": FAC, "period": "202413", "dataValues": {"OPD": 1}},
                                             token=token)
        self.assertEqual(code, 400)
        self.assertEqual(body["error"]["details"]["errors"][0]["field"], "period")

    async def test_idempotency_key(self) -> None:
        """Same key + same body → the first submission (200); same key + other body → 409."""
        await self.add_mapping("OPD", DE_OPD)
        token = await self.user_token("clinic", "submitter")
        submission = {"orgUnit": FAC, "period": "202402", "dataValues": {"OPD": 9}}
        headers = {"Idempotency-Key": "batch-77"}
        code1, first = await self.request_json("POST", "/api/v2/aggregate", submission, token, headers)
        code2, again = await self.request_json("POST", "/api/v2/aggregate", submission, token, headers)
        code3, other = await self.request_json("POST", "/api/v2/aggregate", dict(submission, period="202403"),
                                               token, headers)
        self.assertEqual((code1, code2, code3), (202, 200, 409))
        self.assertEqual(again["submission_id"], first["submission_id"])
        self.assertEqual(other["error"]["code"], "idempotency_key_reused")
        rows = await self.gateway.db.fetch("t", "SELECT id FROM submissions")
        self.assertEqual(len(rows), 1)

    async def test_submitter_sees_only_its_own(self) -> None:
        """Another submitter gets 404 for a submission it did not make; an operator sees it."""
        await self.add_mapping("OPD", DE_OPD)
        mine = await self.user_token("clinic", "submitter")
        theirs = await self.user_token("other", "submitter")
        operator = await self.user_token("ops", "operator")
        _, body = await self.request_json("POST", "/api/v2/aggregate",
                                          {"orgUnit": FAC, "period": "202401", "dataValues": {"OPD": 1}}, mine)
        sid = body["submission_id"]
        self.assertEqual((await self.request_json("GET", f"/api/v2/submissions/{sid}", token=theirs))[0], 404)
        self.assertEqual((await self.request_json("GET", f"/api/v2/submissions/{sid}", token=operator))[0], 200)
        self.assertEqual((await self.request_json("POST", "/api/v2/aggregate", {"orgUnit": FAC, "period": "202401",
                                                                                  "dataValues": {"OPD": 1}},
                                                  operator))[0], 403)

    async def test_oversized_body_is_413(self) -> None:
        """A body over the limit is refused with 413 before it is parsed."""
        token = await self.user_token("clinic", "submitter")
        limit = self.config.server.max_body_bytes
        import treq

        response = await treq.post(self.url("/api/v2/aggregate"), data=b"{" + b" " * limit + b"}",
                                   headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
                                   persistent=False)
        self.assertEqual(response.code, 413)
        self.assertEqual((await response.json())["error"]["code"], "payload_too_large")

    async def test_ingest_while_redis_is_down(self) -> None:
        """With Redis unreachable the submission is still accepted (row queued); the reconciler queues it later."""
        await self.add_mapping("OPD", DE_OPD)
        token = await self.user_token("clinic", "submitter")
        queue = self.gateway.queue
        real_redis = queue.redis
        from dhis2gw.queue.connection import RedisConnections
        from dhis2gw.runtime.embedded import free_port

        dead = RedisConnections(reactor, "127.0.0.1", free_port(), timeout=0.2)
        dead.startService()
        self.addCleanup(dead.stopService)
        queue.redis = dead
        try:
            code, body = await self.request_json("POST", "/api/v2/aggregate",
                                                 {"orgUnit": FAC, "period": "202405", "dataValues": {"OPD": 4}},
                                                 token)
        finally:
            queue.redis = real_redis
        self.assertEqual(code, 202, body)
        row = await self.gateway.store.get(body["submission_id"])
        self.assertEqual(row["status"], "queued")
        self.assertEqual(await queue.known([("main", body["submission_id"])]), [False])
        await self.gateway.dispatcher.reconcile()
        final = await self.wait_status(body["submission_id"], token)
        self.assertEqual(final["status"], "delivered")


class PostgresDownIngestTests(GatewayTestCase):
    """While PostgreSQL is unavailable, ingest answers 503 with Retry-After."""

    async def test_503_with_retry_after(self) -> None:
        token = await self.user_token("clinic", "submitter")
        await self.gateway.db.execute("t", "INSERT INTO dhis2_mappings (uid, code, dataelement) VALUES"
                                           " ('aBcDeFgHiJ1', 'OPD', %s)", (DE_OPD,))
        pool = self.gateway.db._pool
        self.gateway.db._pool = None  # what the pool looks like while PostgreSQL is away
        try:
            import treq

            response = await treq.post(self.url("/api/v2/aggregate"),
                                       json={"orgUnit": FAC, "period": "202401", "dataValues": {"OPD": 1}},
                                       headers={"Authorization": f"Bearer {token}"}, persistent=False)
            body = await response.json()
        finally:
            self.gateway.db._pool = pool
        self.assertEqual(response.code, 503)
        self.assertEqual(response.headers.getRawHeaders("retry-after"), ["5"])
        self.assertEqual(body["error"]["code"], "database_unavailable")
