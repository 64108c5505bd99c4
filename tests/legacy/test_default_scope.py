"""The original's mapping sheets (every row ``default``/``default``) work unchanged: ``default`` means any."""
from __future__ import annotations

from tests.mapping.support import SUBMITTER, MappingRig
from tests.support.delivery import DE_ANC1, DE_OPD, DE_WEIGHT, DS_HMIS, FACILITIES

COC = "HllvX50cXC0"
EMR_SUBMITTER = {"Authorization": ["Test submitter 8 emr"]}

# A sheet as the Go dhis2gw's users wrote it: the 13 columns, instance_name and source_name "default".
ORIGINAL_SHEET = (
    "code,what,name,description,dataset,dataelement,category_option_combo,category_option,category_combo,"
    "instance_name,source_name,source_orgunit,destination_orgunit\r\n"
    f"OPD,de,OPD visits,,{DS_HMIS},{DE_OPD},,,,default,default,,\r\n"
    f"ANC1,de,ANC 1st visit,,{DS_HMIS},{DE_ANC1},{COC},,,default,default,,\r\n"
).encode()


class DefaultScopeTests(MappingRig):
    """Simplified submissions through the ingest API, delivered to the simulator by a dispatcher."""

    prevalidate = False

    async def test_original_sheet_delivers_for_a_submitter_without_source(self) -> None:
        """A default/default sheet imported through /mappings/import/csv maps a submitter with no source_name."""
        imported = await self.call("POST", "/api/v2/mappings/import/csv", data=ORIGINAL_SHEET,
                                   content_type="text/csv")
        self.assertEqual(imported.json["counts"]["inserted"], 2, imported.json)
        self.make_dispatcher()
        answer = await self.call("POST", "/api/v2/aggregate", headers=SUBMITTER,
                                 body={"orgUnit": FACILITIES[0], "period": "202403", "dataSet": DS_HMIS,
                                       "dataValues": {"OPD": 1234567, "ANC1": "9"}})
        self.assertEqual(answer.code, 202, answer.json)
        sid = answer.json["submission_id"]
        await self.wait_final([sid])
        row = await self.store.get(sid)
        self.assertEqual(row["status"], "delivered", row)
        stored = self.sim.store.data_values
        self.assertEqual(stored[(DE_OPD, "202403", FACILITIES[0], COC, COC)].value, "1234567")
        self.assertEqual(stored[(DE_ANC1, "202403", FACILITIES[0], COC, COC)].value, "9")

    async def test_specific_rows_win_and_api_rows_use_default_too(self) -> None:
        """A row for the submitter's source beats default/default; a default row made through the API applies."""
        await self.call("POST", "/api/v2/mappings/import/csv", data=ORIGINAL_SHEET, content_type="text/csv")
        await self.db.execute("test.user", "INSERT INTO users (id, uid, username, role, password_hash, source_name)"
                              " VALUES (8, 'uSubmitter8', 'submitter8', 'submitter', 'x', 'emr')")
        created = await self.call("POST", "/api/v2/mappings", body={
            "code": "OPD", "what": "de", "dataelement": DE_WEIGHT, "source_name": "emr", "instance_name": "default"})
        self.assertEqual(created.code, 201, created.json)
        created = await self.call("POST", "/api/v2/mappings", body={
            "code": "WEIGHT", "what": "de", "dataelement": DE_WEIGHT, "source_name": "default",
            "instance_name": "default"})
        self.assertEqual(created.code, 201, created.json)
        body = {"orgUnit": FACILITIES[1], "period": "202403", "dataValues": {"OPD": 5, "ANC1": 6, "WEIGHT": 7}}
        emr = await self.call("POST", "/api/v2/aggregate", headers=EMR_SUBMITTER, body=body)
        self.assertEqual(emr.code, 202, emr.json)
        self.assertEqual({v["value"]: v["dataElement"] for v in emr.json["payload"]["dataValues"]},
                         {"5": DE_WEIGHT, "6": DE_ANC1, "7": DE_WEIGHT})
        anyone = await self.call("POST", "/api/v2/aggregate", headers=SUBMITTER, body=body)
        self.assertEqual(anyone.code, 202, anyone.json)
        self.assertEqual({v["value"]: v["dataElement"] for v in anyone.json["payload"]["dataValues"]},
                         {"5": DE_OPD, "6": DE_ANC1, "7": DE_WEIGHT})
