"""GET /api/v2/reports/arrivals: facilities × periods of a data set, the latest status per cell."""
from __future__ import annotations

import json
from typing import Any

from tests.operations.support import OperationsTestCase, new_uid

DS = "uFaVMlw4qxK"
UNITS = [("ty5AJ6ZU5f7", "KAL-HC3", "Kaliro HC III"), ("a0BQ4umzjN4", "NAM-HC2", "Namwiwa HC II"),
         ("FkZt56rK3mv", "BUK-HC4", "Bukedea HC IV")]
# (unit, period, status, data set) in creation order: a later row of the same cell wins
ROWS = [(0, "202401", "failed", DS), (0, "202401", "delivered", DS), (0, "202402", "rejected", DS),
        (1, "202401", "partial", DS), (1, "202402", "delivered", "OtherDSet01"), ("gone", "202401", "delivered", DS)]


class ArrivalsReportTests(OperationsTestCase):
    """Which facility reported for which period, from a known table."""

    async def start_gateway(self) -> Any:
        gateway = await super().start_gateway()
        await gateway.db.execute("test.district", "INSERT INTO organisation_units (uid, code, name, level, path)"
                                 " VALUES ('Distr1ct001', 'D1', 'Kaliro District', 3, '/Distr1ct001')")
        for n, (uid, code, name) in enumerate(UNITS):
            parent = "Distr1ct001" if n < 2 else "Other0D1str"
            await gateway.db.execute("test.ou", "INSERT INTO organisation_units (uid, code, name, level, path)"
                                     " VALUES (%s, %s, %s, 4, %s)", (uid, code, name, f"/{parent}/{uid}"))
        self.ids = []
        for n, (unit, period, status, ds) in enumerate(ROWS):
            org_unit = UNITS[unit][0] if isinstance(unit, int) else "NotInCache1"
            payload = {"dataSet": ds, "period": period, "orgUnit": org_unit, "dataValues": []}
            rows = await self.sql(
                "INSERT INTO submissions (uid, kind, destination, endpoint, payload, dhis2_payload, status)"
                " VALUES (%s, 'aggregate', 'main', '/api/v2/aggregate', '{}', %s, %s) RETURNING id",
                (new_uid(n), json.dumps(payload), status))
            self.ids.append(rows[0]["id"])
        return gateway

    async def test_latest_status_per_facility_and_period(self) -> None:
        """Each cell holds the latest submission's status (or missing); unknown org units come last."""
        code, body = await self.call("GET", f"/api/v2/reports/arrivals?data_set={DS}&period=202401,202402")
        self.assertEqual(code, 200, body)
        self.assertEqual(body["periods"], ["202401", "202402"])
        got = {(f["org_unit"], f["code"], f["known"]): f["statuses"] for f in body["facilities"]}
        self.assertEqual(got, {
            ("FkZt56rK3mv", "BUK-HC4", True): ["missing", "missing"],
            ("ty5AJ6ZU5f7", "KAL-HC3", True): ["delivered", "rejected"],
            ("a0BQ4umzjN4", "NAM-HC2", True): ["partial", "missing"],
            ("NotInCache1", None, False): ["delivered", "missing"]})
        self.assertEqual([f["name"] for f in body["facilities"]][:3], ["Bukedea HC IV", "Kaliro HC III",
                                                                       "Namwiwa HC II"])
        kal = next(f for f in body["facilities"] if f["code"] == "KAL-HC3")
        self.assertEqual(kal["submissions"], [self.ids[1], self.ids[2]])
        self.assertEqual(body["totals"]["202401"]["delivered"], 2)
        self.assertEqual(body["totals"]["202402"]["missing"], 3)

    async def test_parent_narrows_the_rows(self) -> None:
        """parent= keeps the facilities under that org unit only."""
        code, body = await self.call("GET", f"/api/v2/reports/arrivals?data_set={DS}&period=202401"
                                            "&parent=Distr1ct001")
        self.assertEqual(code, 200, body)
        self.assertEqual([f["code"] for f in body["facilities"]], ["KAL-HC3", "NAM-HC2"])

    async def test_bad_parameters_are_400_naming_them(self) -> None:
        """A missing data set, too many or malformed periods are clear JSON errors."""
        for query, name in (("period=202401", "data_set"), (f"data_set={DS}", "period"),
                            (f"data_set={DS}&period=2024-01", "period"),
                            (f"data_set={DS}&period=" + ",".join(str(202000 + i) for i in range(30)), "period"),
                            (f"data_set={DS}&period=202401&parent=x", "parent")):
            code, body = await self.call("GET", "/api/v2/reports/arrivals?" + query)
            self.assertEqual((code, body["error"]["details"]["parameter"]), (400, name), query)

    async def test_submitters_may_not_read_it(self) -> None:
        """The report is for operators."""
        code, _ = await self.call("GET", f"/api/v2/reports/arrivals?data_set={DS}&period=202401", who="submitter")
        self.assertEqual(code, 403)
