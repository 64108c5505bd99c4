"""GET /logs over a seeded table: every filter, combinations, time-zone edges, inclusive end date,
pagination totals and the keyset cursor; GET /logs/{id} detail."""
from __future__ import annotations

import json
from typing import Any

from tests.operations.support import OperationsTestCase, new_uid, seed_users

# (key, status, kind, endpoint, destination, submitter, created_at, idempotency_key, error)
# The deployment zone is Africa/Kampala (UTC+3, no DST).
ROWS = [
    ("day_start", "delivered", "aggregate", "/api/v2/aggregate", "main", "alice", "2024-03-01T00:00:00+03:00", None,
     None),
    ("day_before", "failed", "aggregate", "/api/v2/aggregate", "main", "alice", "2024-02-29T23:59:59+03:00", None,
     "retries exhausted"),
    ("end_of_to", "rejected", "tracker", "/api/v2/tracker", "cc1", "bob", "2024-03-31T23:59:59.500+03:00", None,
     "E1005 attribute missing"),
    ("after_to", "partial", "tracker", "/api/v2/tracker", "cc1", "bob", "2024-04-01T00:00:00+03:00", None, None),
    ("queued", "queued", "aggregate", "/api/v2/aggregate", "main", None, "2024-03-15T12:00:00+03:00", "key-abc", None),
    ("retrying", "retrying", "aggregate", "/api/v2/aggregate", "main", "alice", "2024-03-16T09:00:00+03:00", None,
     "HTTP 500 from DHIS2: NullPointerException"),
    ("processing", "processing", "aggregate", "/api/v2/submissions/orgunit", "cc1", "bob", "2024-03-17T10:00:00+03:00",
     None, None),
]
BULK = 45  # delivered aggregate rows for main/alice on 2024-05-01, one a minute


class LogsFilterTests(OperationsTestCase):
    """The /logs list against a known table."""

    async def start_gateway(self) -> Any:
        gateway = await super().start_gateway()
        users = await seed_users(self)
        self.users = users
        self.ids: dict[str, int] = {}
        for n, (key, status, kind, endpoint, dest, who, created, ikey, error) in enumerate(ROWS):
            rows = await self.sql(
                "INSERT INTO submissions (uid, kind, destination, submitter_id, endpoint, idempotency_key, payload,"
                " dhis2_payload, status, created_at, error) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " RETURNING id",
                (new_uid(n), kind, dest, users[who]["id"] if who else None, endpoint, ikey,
                 json.dumps({"row": key}), json.dumps({"dataValues": [{"value": n}]}), status, created, error))
            self.ids[key] = rows[0]["id"]
        await self.gateway.db.execute(
            "test.bulk",
            "INSERT INTO submissions (uid, kind, destination, submitter_id, endpoint, payload, status, created_at)"
            " SELECT 'B' || lpad(g::text, 10, '0'), 'aggregate', 'main', %s, '/api/v2/aggregate', '{}', 'delivered',"
            " timestamptz '2024-05-01T08:00:00+03:00' + g * interval '1 minute' FROM generate_series(1, %s) g",
            (users["alice"]["id"], BULK))
        return gateway

    async def keys(self, query: str) -> set[str]:
        code, body = await self.call("GET", "/api/v2/logs?page_size=500&" + query)
        self.assertEqual(code, 200, body)
        by_id = {v: k for k, v in self.ids.items()}
        self.assertEqual(body["total"], len(body["items"]))
        return {by_id.get(item["id"], "bulk") for item in body["items"]}

    async def test_stats_per_status_and_window(self) -> None:
        """GET /logs/stats counts submissions per status created in the last 24 h and 7 days, in one call."""
        code, before = await self.call("GET", "/api/v2/logs/stats")
        self.assertEqual(code, 200, before)
        self.assertEqual(before["windows"]["7d"], {s: 0 for s in ("queued", "processing", "retrying", "delivered",
                                                                  "partial", "rejected", "failed")})
        for n, (status, age) in enumerate((("failed", "1 hour"), ("failed", "23 hours"), ("failed", "3 days"),
                                          ("delivered", "2 hours"), ("queued", "6 days"), ("delivered", "8 days"))):
            await self.sql("INSERT INTO submissions (uid, kind, destination, endpoint, payload, status, created_at)"
                           " VALUES (%s, 'aggregate', 'main', '/api/v2/aggregate', '{}', %s,"
                           f" now() - interval '{age}')"
                           " RETURNING id", (new_uid(100 + n), status))
        code, body = await self.call("GET", "/api/v2/logs/stats")
        self.assertEqual(code, 200, body)
        day, week = body["windows"]["24h"], body["windows"]["7d"]
        self.assertEqual((day["failed"], day["delivered"], day["queued"]), (2, 1, 0))
        self.assertEqual((week["failed"], week["delivered"], week["queued"]), (3, 1, 1))  # 8 days ago is outside
        self.assertEqual(sum(day.values()), 3)
        code, body = await self.call("GET", "/api/v2/logs/stats", who="operator")
        self.assertEqual((code, body["windows"]["24h"]["failed"]), (200, 2))
        code, body = await self.call("GET", "/api/v2/logs/stats", who="submitter")
        self.assertEqual((code, body["error"]["code"]), (403, "forbidden"))

    async def test_status_one_and_many(self) -> None:
        """status takes one value, comma-separated values and repeated parameters."""
        self.assertEqual(await self.keys("status=failed"), {"day_before"})
        self.assertEqual(await self.keys("status=failed,rejected"), {"day_before", "end_of_to"})
        self.assertEqual(await self.keys("status=queued&status=processing&status=RETRYING"),
                         {"queued", "processing", "retrying"})

    async def test_unknown_status_is_400(self) -> None:
        """An unknown status is refused with the JSON envelope naming the parameter."""
        code, body = await self.call("GET", "/api/v2/logs?status=SUCCESS")
        self.assertEqual(code, 400)
        self.assertEqual(body["error"]["code"], "invalid_parameter")
        self.assertEqual(body["error"]["details"]["parameter"], "status")

    async def test_kind_endpoint_destination(self) -> None:
        """kind, endpoint and destination filter exactly."""
        self.assertEqual(await self.keys("kind=tracker"), {"end_of_to", "after_to"})
        self.assertEqual(await self.keys("endpoint=/api/v2/submissions/orgunit"), {"processing"})
        self.assertEqual(await self.keys("destination=cc1"), {"end_of_to", "after_to", "processing"})

    async def test_user_by_id_uid_and_username(self) -> None:
        """user matches the submitter by id, uid or (case-insensitive) username."""
        bob = self.users["bob"]
        expected = {"end_of_to", "after_to", "processing"}
        self.assertEqual(await self.keys(f"user={bob['id']}"), expected)
        self.assertEqual(await self.keys("user=BobBob00002"), expected)
        self.assertEqual(await self.keys("user=bob"), expected)
        self.assertEqual(await self.keys("user=nobody"), set())

    async def test_ids_and_original_names(self) -> None:
        """id, the original's task_id and job_id, and a uid all select submissions."""
        a, b = self.ids["queued"], self.ids["after_to"]
        self.assertEqual(await self.keys(f"id={a},{b}"), {"queued", "after_to"})
        self.assertEqual(await self.keys(f"task_id={a}"), {"queued"})
        self.assertEqual(await self.keys(f"job_id={b}"), {"after_to"})
        self.assertEqual(await self.keys(f"id={new_uid(0)}"), {"day_start"})
        code, body = await self.call("GET", "/api/v2/logs?job_id=abc")
        self.assertEqual((code, body["error"]["details"]["parameter"]), (400, "job_id"))

    async def test_from_date_is_local_midnight(self) -> None:
        """from=2024-03-01 starts at local midnight: a row one second earlier (same UTC day) is out."""
        got = await self.keys("from=2024-03-01&to=2024-03-01")
        self.assertEqual(got, {"day_start"})
        self.assertNotIn("day_before", await self.keys("from=2024-03-01"))

    async def test_to_date_includes_the_whole_day(self) -> None:
        """to=2024-03-31 includes 23:59:59.5 that day (the original excluded it) and not the next midnight."""
        got = await self.keys("from=2024-03-01&to=2024-03-31")
        self.assertEqual(got, {"day_start", "end_of_to", "queued", "retrying", "processing"})
        self.assertEqual(await self.keys("from_date=2024-03-31&to_date=2024-03-31"), {"end_of_to"})

    async def test_datetimes_and_offsets(self) -> None:
        """A datetime `to` is inclusive to the instant; naive datetimes are local; offsets are honoured."""
        self.assertEqual(await self.keys("from=2024-03-31T00:00:00&to=2024-03-31T23:59:59"), set())
        self.assertEqual(await self.keys("from=2024-03-31T00:00:00&to=2024-03-31T23:59:59.5"), {"end_of_to"})
        # 2024-02-29T21:00Z is local midnight of 1 March
        self.assertEqual(await self.keys("from=2024-02-29T21:00:00Z&to=2024-02-29T21:00:00%2B00:00"), {"day_start"})
        self.assertEqual(await self.keys("submitted_at=2024-02-29"), {"day_before"})

    async def test_bad_dates_are_400(self) -> None:
        """Bad dates are refused, not ignored (the original listed everything)."""
        for query in ("from=2024-13-01", "to=yesterday", "from_date=01/03/2024", "submitted_at=2024-03-01T10:00"):
            code, body = await self.call("GET", "/api/v2/logs?" + query)
            self.assertEqual(code, 400, query)
            self.assertEqual(body["error"]["code"], "invalid_parameter")

    async def test_free_text(self) -> None:
        """q finds a submission by id, uid, idempotency key or words of its error (case-insensitive)."""
        self.assertEqual(await self.keys("q=key-abc"), {"queued"})
        self.assertEqual(await self.keys(f"q={new_uid(2)}"), {"end_of_to"})
        self.assertEqual(await self.keys(f"q={self.ids['after_to']}"), {"after_to"})
        self.assertEqual(await self.keys("q=nullpointer"), {"retrying"})
        self.assertEqual(await self.keys("q=100%25"), set())

    async def test_combinations(self) -> None:
        """Filters combine with AND; values within one filter with OR."""
        got = await self.keys("status=delivered,failed,rejected&destination=main&from=2024-02-01&to=2024-04-30")
        self.assertEqual(got, {"day_start", "day_before"})
        got = await self.keys("kind=aggregate&user=alice&status=retrying,failed")
        self.assertEqual(got, {"retrying", "day_before"})
        self.assertEqual(await self.keys("kind=tracker&status=queued"), set())

    async def test_pagination_totals(self) -> None:
        """page/page_size give exact totals and pages that partition the result, newest first."""
        seen: list[int] = []
        for page in (1, 2, 3, 4, 5):
            code, body = await self.call("GET", f"/api/v2/logs?kind=aggregate&status=delivered&page={page}"
                                                "&page_size=10")
            self.assertEqual(code, 200)
            self.assertEqual((body["total"], body["total_pages"], body["page"], body["page_size"]),
                             (BULK + 1, 5, page, 10))
            seen += [i["id"] for i in body["items"]]
        self.assertEqual(len(seen), BULK + 1)
        self.assertEqual(len(set(seen)), BULK + 1)
        self.assertEqual(seen[-1], self.ids["day_start"])  # oldest last
        code, body = await self.call("GET", "/api/v2/logs?kind=aggregate&status=delivered&page=9&page_size=10")
        self.assertEqual((body["items"], body["total"]), ([], BULK + 1))
        code, body = await self.call("GET", "/api/v2/logs?page_size=0")
        self.assertEqual(code, 400)

    async def test_large_totals_are_estimated(self) -> None:
        """Past the count cap the total is PostgreSQL's estimate, flagged total_exact=false; below it, exact."""
        code, body = await self.call("GET", "/api/v2/logs?page_size=5")
        self.assertEqual((body["total"], body["total_exact"]), (len(ROWS) + BULK, True))
        self.gateway.logs.count_cap = 10
        code, body = await self.call("GET", "/api/v2/logs?page_size=5")
        self.assertEqual(code, 200)
        self.assertFalse(body["total_exact"])
        self.assertGreaterEqual(body["total"], 11)
        self.assertEqual(len(body["items"]), 5)
        code, body = await self.call("GET", "/api/v2/logs?status=failed")
        self.assertEqual((body["total"], body["total_exact"]), (1, True))

    async def test_cursor_walk_matches_pages(self) -> None:
        """Following next_cursor visits the same rows in the same order as page numbers, in either order."""
        for order in ("desc", "asc"):
            code, first = await self.call("GET", f"/api/v2/logs?page_size=7&order={order}&sort=created_at")
            by_cursor = [i["id"] for i in first["items"]]
            cursor = first["next_cursor"]
            while cursor:
                code, body = await self.call("GET", f"/api/v2/logs?page_size=7&cursor={cursor}&with_total=false")
                self.assertEqual(code, 200, body)
                self.assertIsNone(body["total"])
                by_cursor += [i["id"] for i in body["items"]]
                cursor = body["next_cursor"]
            code, everything = await self.call("GET", f"/api/v2/logs?page_size=500&order={order}")
            self.assertEqual(by_cursor, [i["id"] for i in everything["items"]])
            self.assertEqual(len(by_cursor), len(ROWS) + BULK)
        code, body = await self.call("GET", "/api/v2/logs?cursor=not-a-cursor")
        self.assertEqual((code, body["error"]["details"]["parameter"]), (400, "cursor"))

    async def test_sort_by_id_ascending(self) -> None:
        """sort=id&order=asc lists oldest inserts first."""
        code, body = await self.call("GET", "/api/v2/logs?sort=id&order=asc&page_size=3")
        self.assertEqual([i["id"] for i in body["items"]], sorted(self.ids.values())[:3])

    async def test_items_are_plain_json(self) -> None:
        """Items carry plain values (no {String, Valid} objects) plus the original's names."""
        code, body = await self.call("GET", f"/api/v2/logs?id={self.ids['retrying']}&include_payload=true")
        item = body["items"][0]
        self.assertEqual(item["error"], "HTTP 500 from DHIS2: NullPointerException")
        self.assertEqual(item["created_at"], "2024-03-16T09:00:00+03:00")  # the gateway's zone, offset shown
        self.assertEqual(item["submitted_at"], item["created_at"])
        self.assertEqual(item["task_id"], str(self.ids["retrying"]))
        self.assertEqual(item["payload"], {"row": "retrying"})
        self.assertIsNone(item["finished_at"])
        for value in item.values():
            self.assertFalse(isinstance(value, dict) and "Valid" in value)

    async def test_detail_has_payloads_and_timeline(self) -> None:
        """GET /logs/{id} returns payload, DHIS2 payload, response, conflicts, errors, attempts and events."""
        sid = self.ids["end_of_to"]
        await self.gateway.db.execute(
            "test.events",
            "INSERT INTO submission_events (submission_id, event, status, attempt, http_status, duration_ms, detail)"
            " VALUES (%s, 'queued', 'queued', NULL, NULL, NULL, NULL), (%s, 'processing', 'processing', 1, NULL,"
            " NULL, NULL), (%s, 'rejected', 'rejected', 1, 409, 120, 'E1005 attribute missing')", (sid, sid, sid))
        await self.gateway.db.execute(
            "test.resp", "UPDATE submissions SET response = %s, conflicts = %s WHERE id = %s",
            (json.dumps({"status": "ERROR"}), json.dumps([{"errorCode": "E1005"}]), sid))
        code, body = await self.call("GET", f"/api/v2/logs/{sid}")
        self.assertEqual(code, 200)
        self.assertEqual(body["payload"], {"row": "end_of_to"})
        self.assertEqual(body["dhis2_payload"], {"dataValues": [{"value": 2}]})
        self.assertEqual(body["response"], {"status": "ERROR"})
        self.assertEqual(body["conflicts"], [{"errorCode": "E1005"}])
        self.assertEqual([e["event"] for e in body["events"]], ["queued", "processing", "rejected"])
        self.assertEqual(body["attempts_detail"][0]["outcome"], "rejected")
        self.assertEqual(body["attempts_detail"][0]["http_status"], 409)
        self.assertEqual(body["errors"][0]["detail"], "E1005 attribute missing")
        code, body = await self.call("GET", "/api/v2/logs/999999999")
        self.assertEqual((code, body["error"]["code"]), (404, "not_found"))

    async def test_detail_names_the_uids_of_its_payload(self) -> None:
        """GET /logs/{id} gives the code and name the gateway knows for each UID of the DHIS2 payload
        (data elements from the mappings, org units from the org-unit cache): OPD ↔ Re46C6Apebu."""
        sid = self.ids["end_of_to"]
        await self.sql("INSERT INTO dhis2_mappings (uid, code, what, name, dataelement) VALUES"
                       " ('MapOPD00001', 'OPD', 'de', 'OPD visits', 'Re46C6Apebu') RETURNING id")
        await self.sql("INSERT INTO organisation_units (uid, code, name, level, path) VALUES"
                       " ('ty5AJ6ZU5f7', 'UG-KAL-HC3', 'Kaliro Town HC III', 5, '/ty5AJ6ZU5f7')"
                       " ON CONFLICT (uid) DO UPDATE SET code = EXCLUDED.code RETURNING uid")
        await self.sql("UPDATE submissions SET dhis2_payload = %s WHERE id = %s RETURNING id", (json.dumps(
            {"dataSet": "uFaVMlw4qxK", "orgUnit": "ty5AJ6ZU5f7", "period": "202401",
             "dataValues": [{"dataElement": "Re46C6Apebu", "value": "5"}]}), sid))
        code, body = await self.call("GET", f"/api/v2/logs/{sid}")
        self.assertEqual(code, 200, body)
        self.assertEqual(body["names"]["Re46C6Apebu"], {"code": "OPD", "name": "OPD visits", "type": "dataElement"})
        self.assertEqual(body["names"]["ty5AJ6ZU5f7"]["type"], "organisationUnit")
        self.assertNotIn("uFaVMlw4qxK", body["names"])  # a data set nobody mapped: no guess

    async def test_submitter_may_not_list(self) -> None:
        """The logs are for operators and admins: a submitter gets 403, an operator 200."""
        code, body = await self.call("GET", "/api/v2/logs", who="submitter")
        self.assertEqual((code, body["error"]["code"]), (403, "forbidden"))
        code, body = await self.call("GET", "/api/v2/logs?page_size=1", who="operator")
        self.assertEqual(code, 200)
