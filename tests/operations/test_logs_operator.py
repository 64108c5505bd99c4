"""GET /logs answers the operator's question: org unit (UID, code, name), period, data set and
submitter on every row; filters and search by each; times in the gateway's zone; reason first."""
from __future__ import annotations

import json
from typing import Any

from tests.operations.support import OperationsTestCase, new_uid, seed_users

DS = "uFaVMlw4qxK"
UNITS = [("ty5AJ6ZU5f7", "KAL-HC3", "Kaliro Town Health Centre III"),
         ("a0BQ4umzjN4", "NAM-HC2", "Namwiwa Health Centre II")]
# (org unit index, period, submitter, error)
ROWS = [(0, "202401", "alice", None), (0, "202402", "alice", None), (1, "202401", "bob",
        "ERROR created=0 updated=0 ignored=1 deleted=0: Period 203001 is after the latest open future period"),
        (1, "202402", None, None)]


class LogsOperatorTests(OperationsTestCase):
    """The /logs list and detail against rows of two facilities over two months."""

    async def start_gateway(self) -> Any:
        gateway = await super().start_gateway()
        users = await seed_users(self)
        for uid, code, name in UNITS:
            await gateway.db.execute("test.ou", "INSERT INTO organisation_units (uid, code, name, level, path)"
                                     " VALUES (%s, %s, %s, 4, %s)", (uid, code, name, "/" + uid))
        self.ids = []
        for n, (unit, period, who, error) in enumerate(ROWS):
            payload = {"dataSet": DS, "period": period, "orgUnit": UNITS[unit][0],
                       "dataValues": [{"dataElement": "Re46C6Apebu", "value": str(n)}]}
            rows = await self.sql(
                "INSERT INTO submissions (uid, kind, destination, submitter_id, endpoint, payload, dhis2_payload,"
                " status, created_at, error) VALUES (%s, 'aggregate', 'main', %s, '/api/v2/aggregate', %s, %s, %s,"
                " '2024-03-01T09:00:00+00:00', %s) RETURNING id",
                (new_uid(n), users[who]["id"] if who else None, json.dumps({"n": n}), json.dumps(payload),
                 "rejected" if error else "delivered", error))
            self.ids.append(rows[0]["id"])
        return gateway

    async def listed(self, query: str) -> list[dict[str, Any]]:
        code, body = await self.call("GET", "/api/v2/logs?sort=id&order=asc&" + query)
        self.assertEqual(code, 200, body)
        return list(body["items"])

    async def test_rows_carry_org_unit_period_data_set_and_submitter(self) -> None:
        """Each item names the org unit by UID, code and name, its period, data set and submitter."""
        items = await self.listed("")
        self.assertEqual([(i["org_unit"], i["org_unit_code"], i["org_unit_name"], i["period"], i["data_set"],
                           i["submitter"]) for i in items],
                         [("ty5AJ6ZU5f7", "KAL-HC3", "Kaliro Town Health Centre III", "202401", DS, "alice"),
                          ("ty5AJ6ZU5f7", "KAL-HC3", "Kaliro Town Health Centre III", "202402", DS, "alice"),
                          ("a0BQ4umzjN4", "NAM-HC2", "Namwiwa Health Centre II", "202401", DS, "Bob"),
                          ("a0BQ4umzjN4", "NAM-HC2", "Namwiwa Health Centre II", "202402", DS, None)])

    async def test_filters_by_each(self) -> None:
        """org_unit (UID or code), period, data_set and user select exactly their rows."""
        ids = self.ids

        async def ids_of(query: str) -> list[int]:
            return [i["id"] for i in await self.listed(query)]

        self.assertEqual(await ids_of("org_unit=ty5AJ6ZU5f7"), ids[:2])
        self.assertEqual(await ids_of("org_unit=NAM-HC2"), ids[2:])
        self.assertEqual(await ids_of("period=202401"), [ids[0], ids[2]])
        self.assertEqual(await ids_of("org_unit=KAL-HC3&period=202402"), [ids[1]])
        self.assertEqual(await ids_of(f"data_set={DS}"), ids)
        self.assertEqual(await ids_of("data_set=NoSuchDSet1"), [])
        self.assertEqual(await ids_of("user=bob"), [ids[2]])

    async def test_search_by_org_unit_and_period(self) -> None:
        """q matches an org unit's UID, code or words of its name, and a period."""
        ids = self.ids

        async def ids_of(q: str) -> list[int]:
            return [i["id"] for i in await self.listed("q=" + q)]

        self.assertEqual(await ids_of("a0BQ4umzjN4"), ids[2:])
        self.assertEqual(await ids_of("KAL-HC3"), ids[:2])
        self.assertEqual(await ids_of("namwiwa"), ids[2:])
        self.assertEqual(await ids_of("202402"), [ids[1], ids[3]])

    async def test_times_in_the_gateway_zone_and_reason_first(self) -> None:
        """Times carry the gateway's offset (Africa/Kampala, +03:00); the reason comes before the counters."""
        code, body = await self.call("GET", "/api/v2/logs?sort=id&order=asc")
        self.assertEqual(body["timezone"], "Africa/Kampala")
        self.assertEqual(body["items"][0]["created_at"], "2024-03-01T12:00:00+03:00")
        self.assertEqual(body["items"][2]["reason"], "Period 203001 is after the latest open future period"
                                                     " (ERROR created=0 updated=0 ignored=1 deleted=0)")
        code, detail = await self.call("GET", f"/api/v2/logs/{self.ids[2]}")
        self.assertEqual(code, 200, detail)
        self.assertEqual((detail["org_unit_code"], detail["submitter"], detail["created_at"]),
                         ("NAM-HC2", "Bob", "2024-03-01T12:00:00+03:00"))
