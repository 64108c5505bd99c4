"""Pre-validation at ingest against the simulator's metadata, and the mapped aggregate path end to end."""
from __future__ import annotations

import datetime as dt
from typing import Any

from tests.mapping.support import SUBMITTER, MappingRig, make_csv
from tests.sim.support import (
    AOC_GOV,
    COC_DEFAULT,
    COC_MALE_LT5,
    DE_ANC1,
    DE_BED_OCC,
    DE_HIV,
    DE_MAL_CONF,
    DE_MAL_DEATHS,
    DE_OPD,
    DE_OPEN,
    DE_STOCK,
    DE_SUP,
    DE_WEIGHT,
    DS_HMIS,
    DS_MAL,
    FAC_CR,
    FAC_NR,
    REGION_NR,
)


def this_month(offset: int = 0) -> str:
    """The current monthly period (UTC) shifted by ``offset`` months."""
    today = dt.datetime.now(dt.UTC).date()
    total = today.year * 12 + today.month - 1 + offset
    return f"{total // 12:04d}{total % 12 + 1:02d}"


def native(values: list[dict[str, Any]], ds: str = DS_HMIS, ou: str = FAC_NR, pe: str = "202401") -> dict[str, Any]:
    return {"dataSet": ds, "orgUnit": ou, "period": pe, "dataValues": values}


class PreValidationTests(MappingRig):
    """Each check, with the value's index and DHIS2's code, in a 422; nothing queued."""

    async def submit_http(self, body: dict[str, Any], query: str = "") -> Any:
        return await self.call("POST", "/api/v2/aggregate" + query, headers=SUBMITTER, body=body)

    async def queued(self) -> int:
        return (await self.db.fetch_one("test.n", "SELECT count(*) AS n FROM submissions"))["n"]

    async def assert_refused(self, body: dict[str, Any], expected: list[tuple[int, str, str]]) -> list[dict]:
        answer = await self.submit_http(body)
        self.assertEqual(answer.code, 422, answer.json)
        self.assertEqual(answer.json["error"]["code"], "dhis2_validation_failed")
        errors = answer.json["error"]["details"]["errors"]
        self.assertEqual([(e["index"], e["field"].rsplit("/", 1)[1], e["code"]) for e in errors], expected)
        self.assertEqual(await self.queued(), 0)
        return errors

    async def test_empty_cache_accepts_and_says_so(self) -> None:
        """Before any refresh the submission is queued with validation.checked = false and a reason."""
        answer = await self.submit_http(native([{"dataElement": DE_OPD, "value": "-5"}]))
        self.assertEqual(answer.code, 202, answer.json)
        self.assertEqual(answer.json["validation"]["checked"], False)
        self.assertIn("no DHIS2 metadata", answer.json["validation"]["reason"])

    async def test_each_check(self) -> None:
        """E7610, E7633, E7613, E7634 (also a missing COC on a disaggregated element), E7612, E7636, E7632,
        E7619 for every value type, E7618; a clean payload passes with checked = true."""
        await self.refresh_metadata()
        ok = await self.submit_http(native([{"dataElement": DE_OPD, "value": "5"},
                                            {"dataElement": DE_MAL_DEATHS, "value": "0"},  # override: default COC
                                            {"dataElement": DE_HIV, "categoryOptionCombo": COC_MALE_LT5,
                                             "value": "3"}]))
        self.assertEqual(ok.code, 202, ok.json)
        self.assertEqual(ok.json["validation"]["checked"], True)
        self.assertEqual(ok.json["validation"]["data_set"], DS_HMIS)
        await self.db.execute("test.clear", "DELETE FROM submissions")
        errors = await self.assert_refused(native([
            {"dataElement": "Zz3456789ab", "value": "1"},
            {"dataElement": DE_MAL_CONF, "categoryOptionCombo": COC_MALE_LT5, "value": "1"},
            {"dataElement": DE_OPD, "categoryOptionCombo": "Zz3456789ab", "value": "1"},
            {"dataElement": DE_OPD, "categoryOptionCombo": COC_MALE_LT5, "value": "1"},
            {"dataElement": DE_HIV, "value": "1"},
        ]), [(0, "dataElement", "E7610"), (1, "dataElement", "E7633"), (2, "categoryOptionCombo", "E7613"),
             (3, "categoryOptionCombo", "E7634"), (4, "categoryOptionCombo", "E7634")])
        self.assertIn("Zz3456789ab", errors[0]["message"])
        await self.assert_refused(native([{"dataElement": DE_OPD, "value": "1"}], ou="Zz3456789ab"),
                                  [(0, "orgUnit", "E7612")])
        await self.assert_refused(native([{"dataElement": DE_MAL_CONF, "categoryOptionCombo": COC_MALE_LT5,
                                           "value": "1"}], ds=DS_MAL, ou=FAC_CR, pe=this_month()),
                                  [(0, "orgUnit", "E7636")])
        await self.assert_refused(native([{"dataElement": DE_OPD, "value": "1"}], ou=REGION_NR),
                                  [(0, "orgUnit", "E7636")])
        await self.assert_refused(native([{"dataElement": DE_OPD, "value": "1"}], pe="2024Q1"),
                                  [(0, "period", "E7632")])
        await self.assert_refused(native([
            {"dataElement": DE_OPD, "value": "0"}, {"dataElement": DE_ANC1, "value": "-1"},
            {"dataElement": DE_BED_OCC, "value": "101"}, {"dataElement": DE_WEIGHT, "value": "3,5"},
            {"dataElement": DE_OPEN, "value": "yes"}, {"dataElement": DE_SUP, "value": "2024-02-30"},
            {"dataElement": DE_OPD, "value": "1.5"}, {"dataElement": DE_OPD, "comment": ""},
        ]), [(0, "value", "E7619"), (1, "value", "E7619"), (2, "value", "E7619"), (3, "value", "E7619"),
             (4, "value", "E7619"), (5, "value", "E7619"), (6, "value", "E7619"), (7, "value", "E7618")])
        stock = await self.submit_http(native([{"dataElement": DE_STOCK, "value": "-4"}], ds=DS_MAL, pe=this_month()))
        self.assertEqual((stock.code, stock.json["validation"]["checked"]), (202, True))  # INTEGER takes negatives

    async def test_unknown_data_set_or_other_id_scheme_is_not_checked(self) -> None:
        """A data set the cache does not know, or a CODE id scheme, is accepted with the reason given."""
        await self.refresh_metadata()
        answer = await self.submit_http(native([{"dataElement": DE_OPD, "value": "-1"}], ds="Zz3456789ab"))
        self.assertEqual((answer.code, answer.json["validation"]["checked"]), (202, False))
        self.assertIn("not in the cached metadata", answer.json["validation"]["reason"])
        coded = await self.submit_http(native([{"dataElement": "DE_OPD_VISITS", "value": "1"}]),
                                       "?dataElementIdScheme=CODE")
        self.assertEqual((coded.code, coded.json["validation"]["checked"]), (202, False))

    async def test_validate_only(self) -> None:
        """?validate_only=true answers the verdict (200 or 422) and records nothing."""
        await self.refresh_metadata()
        good = await self.submit_http(native([{"dataElement": DE_OPD, "value": "5"}]), "?validate_only=true")
        self.assertEqual(good.code, 200, good.json)
        self.assertEqual((good.json["valid"], good.json["queued"], good.json["validation"]["checked"]),
                         (True, False, True))
        bad = await self.submit_http(native([{"dataElement": DE_OPD, "value": "x"}]), "?validate_only=true")
        self.assertEqual((bad.code, bad.json["error"]["details"]["errors"][0]["code"]), (422, "E7619"))
        self.assertEqual(await self.queued(), 0)

    async def test_mapped_sheet_to_simulator(self) -> None:
        """Codes from an imported sheet (with an org-unit mapping) arrive in DHIS2 as the right UIDs; an unmapped
        code is a 422 naming it; a mapped value DHIS2 would refuse is a 422 naming the submitter's code."""
        await self.refresh_metadata()
        self.make_dispatcher()
        rows = [{"code": "opd", "dataelement": DE_OPD, "dataset": DS_HMIS},
                {"code": "hiv_m", "dataelement": DE_HIV, "category_option_combo": COC_MALE_LT5},
                {"code": "deaths", "dataelement": DE_MAL_DEATHS, "category_option_combo": COC_DEFAULT},
                {"code": "KAL-HC3", "what": "ou", "destination_orgunit": FAC_NR}]
        imported = await self.call("POST", "/api/v2/mappings/import/csv", data=make_csv(rows))
        self.assertEqual(imported.json["counts"]["inserted"], 4, imported.json)
        body = {"orgUnit": "KAL-HC3", "period": "202402", "dataValues": {"opd": 1000000, "hiv_m": 7, "deaths": 0}}
        answer = await self.submit_http(body)
        self.assertEqual(answer.code, 202, answer.json)
        self.assertTrue(answer.json["validation"]["checked"])
        await self.wait_final([answer.json["submission_id"]])
        row = await self.store.get(answer.json["submission_id"])
        self.assertEqual(row["status"], "delivered", row)
        stored = self.sim.store.data_values
        self.assertEqual(stored[(DE_OPD, "202402", FAC_NR, COC_DEFAULT, COC_DEFAULT)].value, "1000000")
        self.assertEqual(stored[(DE_HIV, "202402", FAC_NR, COC_MALE_LT5, COC_DEFAULT)].value, "7")
        self.assertEqual(stored[(DE_MAL_DEATHS, "202402", FAC_NR, COC_DEFAULT, COC_DEFAULT)].value, "0")
        unmapped = await self.submit_http({"orgUnit": FAC_NR, "period": "202402",
                                           "dataValues": {"opd": 1, "mystery": 2}})
        self.assertEqual((unmapped.code, unmapped.json["error"]["code"]), (422, "unmapped_codes"))
        self.assertEqual(unmapped.json["error"]["details"]["unmapped"], ["mystery"])
        refused = await self.submit_http({"orgUnit": FAC_NR, "period": "202402", "dataValues": {"hiv_m": 1, "opd": -3}})
        self.assertEqual(refused.code, 422)
        (error,) = refused.json["error"]["details"]["errors"]
        self.assertEqual((error["index"], error["key"], error["code"]), (1, "opd", "E7619"))


class PeriodWindowTests(MappingRig):
    """Future and closed periods are refused at ingest with the field and the code of the destination's version."""

    async def submit_http(self, body: dict[str, Any]) -> Any:
        return await self.call("POST", "/api/v2/aggregate", headers=SUBMITTER, body=body)

    async def codes(self, body: dict[str, Any]) -> list[tuple[str, str]]:
        answer = await self.submit_http(body)
        self.assertEqual(answer.code, 422, answer.json)
        return [(e["field"], e["code"]) for e in answer.json["error"]["details"]["errors"]]

    async def test_future_period_is_a_422(self) -> None:
        """A value for 203001 (HMIS opens no future period) is a 422 naming dataValues/0/period and E7641."""
        await self.refresh_metadata()
        self.assertEqual(await self.codes(native([{"dataElement": DE_OPD, "value": "5"}], pe="203001")),
                         [("dataValues/0/period", "E7641")])
        # the malaria data set opens 2 future periods: next month is fine, 3 months ahead is not
        ok = await self.submit_http(native([{"dataElement": DE_STOCK, "value": "1"}], ds=DS_MAL, pe=this_month(2)))
        self.assertEqual(ok.code, 202, ok.json)
        self.assertEqual(await self.codes(native([{"dataElement": DE_STOCK, "value": "1"}], ds=DS_MAL,
                                                 pe=this_month(3))), [("dataValues/0/period", "E7641")])

    async def test_expired_period_is_a_422(self) -> None:
        """The malaria data set expires 15 days after a period ends: two months back is E7640."""
        await self.refresh_metadata()
        self.assertEqual(await self.codes(native([{"dataElement": DE_STOCK, "value": "1"}], ds=DS_MAL,
                                                 pe=this_month(-2))), [("dataValues/0/period", "E7640")])
        old = await self.submit_http(native([{"dataElement": DE_OPD, "value": "5"}], pe="201001"))
        self.assertEqual(old.code, 202, "HMIS never expires")


class PreValidation243Tests(MappingRig):
    """The destination answers as DHIS2 2.43.2: the 422 names the 2.43 codes and checks the 2.43 rules."""

    version = "2.43.2"

    async def submit_http(self, body: dict[str, Any]) -> Any:
        return await self.call("POST", "/api/v2/aggregate", headers=SUBMITTER, body=body)

    async def codes(self, body: dict[str, Any]) -> list[tuple[int, str, str]]:
        answer = await self.submit_http(body)
        self.assertEqual(answer.code, 422, answer.json)
        self.assertEqual(answer.json["error"]["details"]["validation"]["dhis2_version"], "2.43.2")
        return [(e["index"], e["field"].rsplit("/", 1)[1], e["code"])
                for e in answer.json["error"]["details"]["errors"]]

    async def test_codes_of_243(self) -> None:
        """E8020, E8005, E8024, E8004, E8022, E8021, E8122, E8120 and E8030 (future) instead of the E76xx codes."""
        await self.refresh_metadata()
        self.assertEqual(await self.codes(native([
            {"dataElement": "Zz3456789ab", "value": "1"},
            {"dataElement": DE_MAL_CONF, "categoryOptionCombo": COC_MALE_LT5, "value": "1"},
            {"dataElement": DE_OPD, "categoryOptionCombo": "Zz3456789ab", "value": "1"},
            {"dataElement": DE_HIV, "value": "1"},
            {"dataElement": DE_OPD, "value": "x"},
            {"dataElement": DE_ANC1, "comment": ""},
        ])), [(0, "dataElement", "E8020"), (1, "dataElement", "E8020"), (2, "categoryOptionCombo", "E8005"),
              (3, "categoryOptionCombo", "E8024"), (4, "value", "E8122"), (5, "value", "E8120")])
        self.assertEqual(await self.codes(native([{"dataElement": DE_OPD, "value": "1"}], ou="Zz3456789ab")),
                         [(0, "orgUnit", "E8004")])
        self.assertEqual(await self.codes(native([{"dataElement": DE_OPD, "value": "1"}], ou=REGION_NR)),
                         [(0, "orgUnit", "E8022")])
        self.assertEqual(await self.codes(native([{"dataElement": DE_OPD, "value": "1"}], pe="2024Q1")),
                         [(0, "period", "E8021")])
        self.assertEqual(await self.codes(native([{"dataElement": DE_OPD, "value": "1"}], pe="203001")),
                         [(0, "period", "E8030")])

    async def test_combos_usable_with_the_data_set(self) -> None:
        """E8023: the default AOC is not usable with the malaria data set (its attribute combo is not default);
        a real AOC passes. The same payload is accepted at ingest for 2.42 (DHIS2 2.42 accepted it too)."""
        await self.refresh_metadata()
        value = {"dataElement": DE_MAL_CONF, "categoryOptionCombo": COC_MALE_LT5, "value": "1"}
        self.assertEqual(await self.codes(native([value], ds=DS_MAL, pe=this_month())),
                         [(0, "attributeOptionCombo", "E8023")])
        ok = await self.submit_http(dict(native([value], ds=DS_MAL, pe=this_month()), attributeOptionCombo=AOC_GOV))
        self.assertEqual(ok.code, 202, ok.json)
        self.assertEqual(await self.codes(dict(native([value], ds=DS_MAL, pe=this_month()),
                                               attributeOptionCombo="Zz3456789ab")),
                         [(0, "attributeOptionCombo", "E8006")])

    async def test_duplicate_keys_and_data_set_detection(self) -> None:
        """Two values for one key: E8128; no dataSet and an element in two data sets: E8002 (both refused by 2.43
        as a whole import)."""
        await self.refresh_metadata()
        self.assertEqual(await self.codes(native([{"dataElement": DE_OPD, "value": "1"},
                                                  {"dataElement": DE_OPD, "value": "2"}])),
                         [(1, "dataElement", "E8128")])
        body = {"orgUnit": FAC_NR, "period": "202401", "dataValues": [{"dataElement": DE_MAL_DEATHS, "value": "1"}]}
        self.kind.default_data_set = None
        self.assertEqual(await self.codes(body), [(0, "dataElement", "E8002")])

    async def test_what_passes_is_accepted_by_the_simulator(self) -> None:
        """A payload pre-validation accepts at 2.43 is delivered by the simulated 2.43.2."""
        await self.refresh_metadata()
        self.make_dispatcher()
        value = {"dataElement": DE_MAL_CONF, "categoryOptionCombo": COC_MALE_LT5, "value": "4"}
        answer = await self.submit_http(dict(native([value], ds=DS_MAL, pe=this_month()),
                                             attributeOptionCombo=AOC_GOV))
        self.assertEqual(answer.code, 202, answer.json)
        await self.wait_final([answer.json["submission_id"]])
        self.assertEqual((await self.store.get(answer.json["submission_id"]))["status"], "delivered")
