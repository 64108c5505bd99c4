"""Aggregate import semantics: validation codes, upsert counting per version, id schemes, flags."""
from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from .support import (
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
    DS_HMIS,
    FAC_CR,
    FAC_NR,
    StubClient,
    basic,
)


def dv(de: str = DE_OPD, value: Any = "5", pe: str = "202401", ou: str = FAC_NR, **extra: Any) -> dict[str, Any]:
    return {"dataElement": de, "period": pe, "orgUnit": ou, "value": value, **extra}


def summary(client: StubClient, values: list[dict[str, Any]], query: str = "", **header: Any) -> dict[str, Any]:
    code, body, _ = client.post("/api/dataValueSets" + query, {**header, "dataValues": values})
    return body.get("response", body)


def codes(s: dict[str, Any]) -> list[str]:
    return [c["errorCode"] for c in s["conflicts"]]


class ValidationTests(SynchronousTestCase):
    """Value-level and header-level conflicts carry DHIS2's codes and nothing invalid is stored."""

    def test_value_types(self) -> None:
        """E7619 per value type, valid values of every type stored, rejectedIndexes point at the bad rows."""
        client = StubClient("2.40")
        values = [dv(DE_OPD, "0"), dv(DE_OPD, "3"), dv(DE_BED_OCC, "101"), dv(DE_BED_OCC, "99.5"),
                  dv(DE_STOCK, "-4", pe="202506"), dv(DE_STOCK, "1.5"), dv(DE_OPEN, "yes"), dv(DE_OPEN, "True"),
                  dv(DE_SUP, "2024-13-01"), dv(DE_SUP, "2024-01-31")]
        s = summary(client, values)
        self.assertEqual(s["status"], "WARNING")
        self.assertEqual(s["rejectedIndexes"], [0, 2, 5, 6, 8])
        keys = [c["objects"]["value"] for c in s["conflicts"]]
        self.assertEqual(keys, ["value_not_positive_integer", "value_not_percentage", "value_not_integer",
                                "value_not_bool", "value_not_valid_date"])
        self.assertEqual(s["importCount"], {"imported": 5, "updated": 0, "ignored": 5, "deleted": 0})
        stored = {k[0]: v.value for k, v in client.sim.store.data_values.items()}
        self.assertEqual(stored[DE_OPEN], "true")  # booleans normalised
        self.assertEqual(stored[DE_STOCK], "-4")

    def test_lookup_failures_and_header(self) -> None:
        """E7610/E7611/E7612/E7613/E7615/E7618 per value; E7603/E7604 abort with status ERROR."""
        client = StubClient("2.39")
        s = summary(client, [dv("NOPE0000000"), dv(pe="2024XX"), dv(ou="NOPE0000000"),
                             dv(categoryOptionCombo="NOPE0000000"), dv(attributeOptionCombo="NOPE0000000"),
                             dv(value=""), dv(value="7")])
        self.assertEqual(codes(s), ["E7610", "E7611", "E7612", "E7613", "E7615", "E7618"])
        self.assertEqual([c["property"] for c in s["conflicts"]],
                         ["dataElement", "period", "orgUnit", "categoryOptionCombo", "attributeOptionCombo", "value"])
        self.assertEqual(s["importCount"]["imported"], 1)
        for header, code in (({"orgUnit": "NOPE0000000"}, "E7603"), ({"attributeOptionCombo": "NOPE0000000"}, "E7604")):
            s = summary(client, [dv()], **header)
            self.assertEqual((s["status"], codes(s), s["description"]), ("ERROR", [code], "Import process was aborted"))
            self.assertNotIn("dataSetComplete", s)

    def test_future_and_expired_periods(self) -> None:
        """E7641 beyond openFuturePeriods (2.39 vs 2.40 wording); E7640 after expiryDays; force bypasses."""
        client = StubClient("2.40")
        s = summary(client, [dv(DE_OPD, pe="202507"), dv(DE_OPD, pe="202506"),
                             dv(DE_MAL_CONF, pe="202508", categoryOptionCombo=COC_MALE_LT5),
                             dv(DE_MAL_CONF, pe="202509", categoryOptionCombo=COC_MALE_LT5),
                             dv(DE_MAL_CONF, pe="202505", categoryOptionCombo=COC_MALE_LT5),
                             dv(DE_MAL_CONF, pe="202504", categoryOptionCombo=COC_MALE_LT5)])
        self.assertEqual(codes(s), ["E7641", "E7641", "E7640"])
        self.assertEqual(s["rejectedIndexes"], [0, 3, 5])
        self.assertIn("and data set: `uFaVMlw4qxK`", s["conflicts"][0]["value"])
        old = summary(StubClient("2.39"), [dv(DE_OPD, pe="202507")])
        self.assertEqual(old["conflicts"][0]["value"],
                         f"Period: `202507` is after latest open future period: `202506` for data element: `{DE_OPD}`")
        forced = summary(StubClient("2.40"), [dv(DE_MAL_CONF, pe="202504", categoryOptionCombo=COC_MALE_LT5)],
                         "?force=true")
        self.assertEqual(forced["status"], "SUCCESS")

    def test_strict_flags(self) -> None:
        """E7632–E7636 only when the strict flags are on."""
        client = StubClient("2.40")
        values = [dv(DE_OPD, pe="2024Q1"), dv(DE_OPD, categoryOptionCombo=COC_MALE_LT5),
                  dv(DE_OPD, attributeOptionCombo=AOC_GOV), dv(DE_OPD, ou="XkHJyWD6G7A")]
        self.assertEqual(summary(client, values, "?dryRun=true")["status"], "SUCCESS")
        s = summary(client, values, "?dryRun=true&strictPeriods=true&strictCategoryOptionCombos=true"
                                    "&strictAttributeOptionCombos=true&strictOrganisationUnits=true")
        self.assertEqual(codes(s), ["E7632", "E7634", "E7635", "E7636"])
        s = summary(client, [dv(DE_MAL_CONF, categoryOptionCombo=COC_MALE_LT5)], "?strictDataElements=true",
                    dataSet=DS_HMIS)
        self.assertEqual(codes(s), ["E7633"])
        self.assertIn("dataset(s)", s["conflicts"][0]["value"])
        self.assertEqual(client.sim.store.data_values, {})


class CountingTests(SynchronousTestCase):
    """Upserts by natural key are counted imported/updated/ignored/deleted as DHIS2 does."""

    def test_resend_counts_per_version(self) -> None:
        """A re-sent unchanged value is 'updated' before 2.38.6/2.40.3/2.41 and 'ignored' after."""
        for version, bucket in (("2.37", "updated"), ("2.38.5", "updated"), ("2.38.6", "ignored"),
                                ("2.39", "updated"), ("2.40.2", "updated"), ("2.40.3", "ignored"),
                                ("2.41", "ignored"), ("2.42", "ignored")):
            with self.subTest(version):
                client = StubClient(version)
                first = summary(client, [dv(value="5")])
                self.assertEqual(first["importCount"]["imported"], 1)
                again = summary(client, [dv(value="5")])
                self.assertEqual(again["importCount"][bucket], 1)
                changed = summary(client, [dv(value="6")])
                self.assertEqual(changed["importCount"]["updated"], 1)
                key = (DE_OPD, "202401", FAC_NR, COC_DEFAULT, COC_DEFAULT)
                self.assertEqual(client.sim.store.data_values[key].value, "6")
                self.assertEqual(client.sim.store.write_counts[key], 3 if bucket == "updated" else 2)

    def test_strategies_zero_and_delete(self) -> None:
        """CREATE skips existing, UPDATE skips new, DELETE soft-deletes, insignificant zeros are not stored."""
        client = StubClient("2.41")
        summary(client, [dv(value="5")])
        self.assertEqual(summary(client, [dv(value="9"), dv(DE_ANC1, "1")], "?importStrategy=CREATE")["importCount"],
                         {"imported": 1, "updated": 0, "ignored": 1, "deleted": 0})
        self.assertEqual(summary(client, [dv(value="9"), dv(DE_BED_OCC, "1")], "?importStrategy=UPDATE")["importCount"],
                         {"imported": 0, "updated": 1, "ignored": 1, "deleted": 0})
        s = summary(client, [dv(DE_HIV, "0", categoryOptionCombo=COC_MALE_LT5),
                             dv(DE_MAL_DEATHS, "0", categoryOptionCombo=COC_MALE_LT5)])
        self.assertEqual(s["importCount"], {"imported": 1, "updated": 0, "ignored": 1, "deleted": 0})
        self.assertEqual(s["conflicts"], [])
        self.assertNotIn(DE_HIV, {k[0] for k in client.sim.store.live_values()})
        s = summary(client, [dv(value=""), dv(DE_ANC1, deleted=True, value=None)], "?importStrategy=DELETE")
        self.assertEqual(s["importCount"]["deleted"], 2)
        self.assertTrue(all(v.deleted for k, v in client.sim.store.data_values.items() if k[0] in (DE_OPD, DE_ANC1)))
        self.assertEqual(summary(client, [dv(value="5")])["importCount"]["imported"], 1)  # undelete = imported

    def test_dry_run_and_completion(self) -> None:
        """dryRun counts without storing; completeDate registers the data set completion."""
        client = StubClient("2.40")
        s = summary(client, [dv(), dv(DE_ANC1, "2")], "?dryRun=true")
        self.assertEqual((s["importCount"]["imported"], s["importOptions"]["dryRun"]), (2, True))
        self.assertEqual(client.sim.store.data_values, {})
        s = summary(client, [{"dataElement": DE_OPD, "value": "4"}], dataSet=DS_HMIS, period="202402",
                    orgUnit=FAC_NR, completeDate="2024-03-05")
        self.assertEqual(s["dataSetComplete"], "2024-03-05")
        self.assertEqual(list(client.sim.store.completions), [(DS_HMIS, "202402", FAC_NR, COC_DEFAULT)])

    def test_id_schemes(self) -> None:
        """CODE and NAME id schemes from query parameters or the payload header resolve to the same key."""
        client = StubClient("2.40")
        s = summary(client, [{"dataElement": "DE_MAL_CONFIRMED", "period": "202506", "orgUnit": "ZM_NR_KAL_S1_HC3",
                              "categoryOptionCombo": "MALE_LT5", "attributeOptionCombo": "FUND_GOV", "value": "3"}],
                    "?idScheme=CODE")
        self.assertEqual(s["status"], "SUCCESS", s)
        self.assertEqual(s["importOptions"]["idSchemes"], {"idScheme": {"type": "CODE"}})
        s = summary(client, [{"dataElement": "Malaria cases confirmed", "period": "202506",
                              "orgUnit": "ZM_NR_KAL_S1_HC3", "categoryOptionCombo": "Male, <5y",
                              "attributeOptionCombo": "Government", "value": "4"}],
                    dataElementIdScheme="NAME", orgUnitIdScheme="CODE", categoryOptionComboIdScheme="NAME")
        self.assertEqual(s["importCount"]["updated"], 1, s)
        key = (DE_MAL_CONF, "202506", FAC_NR, COC_MALE_LT5, AOC_GOV)
        self.assertEqual(client.sim.store.data_values[key].value, "4")
        self.assertEqual(codes(summary(client, [dv("DE_OPD_VISITS")])), ["E7610"])  # UID scheme by default

    def test_versioned_path_and_clerk_hierarchy(self) -> None:
        """/api/37/dataValueSets is bare on 2.40; a clerk outside their hierarchy gets E7617."""
        client = StubClient("2.40")
        code, body, _ = client.post("/api/37/dataValueSets", {"dataValues": [dv("NOPE0000000")]})
        self.assertEqual((code, body["responseType"], body["status"]), (200, "ImportSummary", "WARNING"))
        code, body, _ = client.post("/api/dataValueSets", {"dataValues": [dv(ou=FAC_CR), dv()]},
                                    headers=basic("clerk", "Clerk123!"))
        self.assertEqual(codes(body["response"]), ["E7617"])
        self.assertEqual(client.sim.store.data_values[(DE_OPD, "202401", FAC_NR, COC_DEFAULT, COC_DEFAULT)].storedBy,
                         "clerk")
        code, body, _ = client.get(f"/api/dataValueSets?dataSet={DS_HMIS}&period=202401&orgUnit={REGION}&children=true")
        self.assertEqual([v["value"] for v in body["dataValues"]], ["5"])


REGION = "OZRoMx0Tm10"
