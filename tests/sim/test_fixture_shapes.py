"""The simulator answers like the captured/constructed DHIS2 fixtures, per version (table-driven)."""
from __future__ import annotations

import copy
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from .support import (COC_FEMALE_LT5, COC_MALE_LT5, DE_MAL_CONF, DE_OPD, DE_WEIGHT, DS_HMIS, FAC_CR,
                               FAC_NR, PR_CHILD, PS_VACC, DE_VACCINE, StubClient,
                               assert_same_shape, basic, fixture, person)

DRY = "?dryRun=true&preheatCache=true&skipAudit=true"
OK_VALUES = {"dataValues": [{"dataElement": DE_OPD, "period": "202401", "orgUnit": FAC_NR, "value": "12"}]}
E7610_VALUES = {"dataValues": [
    {"dataElement": DE_OPD, "period": "202401", "orgUnit": FAC_NR, "value": "12"},
    {"dataElement": "INVALID_1", "period": "202401", "orgUnit": FAC_NR, "value": "1"},
    {"dataElement": "INVALID_2", "period": "202401", "orgUnit": FAC_NR, "value": "1"}]}
E7612_VALUES = {"dataValues": [
    {"dataElement": DE_OPD, "period": "202401", "orgUnit": FAC_NR, "value": "12"},
    {"dataElement": DE_OPD, "period": "202401", "orgUnit": "INVALID_1_OU", "value": "1"},
    {"dataElement": DE_OPD, "period": "202401", "orgUnit": "INVALID_2_OU", "value": "1"}]}
LOCKED_VALUES = {"dataValues": [
    {"dataElement": DE_OPD, "period": "202401", "orgUnit": FAC_NR, "value": "12"},
    {"dataElement": DE_MAL_CONF, "categoryOptionCombo": COC_MALE_LT5, "period": "202401", "orgUnit": FAC_NR,
     "value": "3"},
    {"dataElement": DE_MAL_CONF, "categoryOptionCombo": COC_FEMALE_LT5, "period": "202401", "orgUnit": FAC_NR,
     "value": "4"},
    {"dataElement": DE_WEIGHT, "period": "202401", "orgUnit": FAC_NR, "value": "abc"}]}


def pre38(expected: dict[str, Any]) -> dict[str, Any]:
    """What a 2.37 server returns instead of a 2.39+ WebMessage fixture: the bare summary."""
    summary = copy.deepcopy(expected["response"])
    summary.pop("rejectedIndexes", None)
    for flag in ("strictDataSetApproval", "strictDataSetLocking", "strictDataSetInputPeriods"):
        summary["importOptions"].pop(flag, None)  # echoed from 2.38 on
    return summary


# (name, fixture, version, path, payload or raw bytes, expected status, transform)
AGGREGATE_CASES = [
    ("success 2.40", "dataValueSets/success_200_dryRun_v2.40.9__public-test-module.json", "2.40", DRY, OK_VALUES, 200, None),
    ("success 2.37", "dataValueSets/success_200_dryRun_v2.40.9__public-test-module.json", "2.37", DRY, OK_VALUES, 200, pre38),
    ("E7610 2.40", "dataValueSets/warning_409_E7610_v2.40.9__public-test-module.json", "2.40", DRY, E7610_VALUES, 409, None),
    ("E7610 2.37", "dataValueSets/warning_409_E7610_v2.40.9__public-test-module.json", "2.37", DRY, E7610_VALUES, 200, pre38),
    ("E7612 2.40", "dataValueSets/warning_409_E7612_v2.40.9__public-test-module.json", "2.40", DRY, E7612_VALUES, 409, None),
    ("E7612 2.37", "dataValueSets/warning_409_E7612_v2.40.9__public-test-module.json", "2.37", DRY, E7612_VALUES, 200, pre38),
    ("locked 2.40", "dataValueSets/warning_409_locked_periods_v2.40-2.42__constructed.json", "2.40", "", LOCKED_VALUES, 409, None),
    ("locked 2.37", "dataValueSets/warning_409_locked_periods_v2.40-2.42__constructed.json", "2.37", "", LOCKED_VALUES, 200, pre38),
    ("E7600 2.40", "dataValueSets/error_409_aborted_E7600_v2.39-2.42__constructed.json", "2.40", "",
     {"dataSet": "pBOMPrpg1QX", "dataValues": OK_VALUES["dataValues"]}, 409, None),
    ("E7600 2.37", "dataValueSets/error_409_aborted_E7600_v2.39-2.42__constructed.json", "2.37", "",
     {"dataSet": "pBOMPrpg1QX", "dataValues": OK_VALUES["dataValues"]}, 200, pre38),
    ("unparseable 2.40", "dataValueSets/error_409_unparseable_payload_v2.38-2.42__constructed.json", "2.40", "", b"", 409, None),
    ("unparseable 2.37", "dataValueSets/error_409_unparseable_payload_v2.38-2.42__constructed.json", "2.37", "", b"", 200, pre38),
]


class AggregateFixtureTests(SynchronousTestCase):
    """dataValueSets responses match the fixtures at 2.37 (bare summary) and 2.40 (WebMessage)."""

    def test_cases(self) -> None:
        """Every table row: same status, same keys, same enum values, same error codes."""
        for name, fx, version, query, payload, status, transform in AGGREGATE_CASES:
            with self.subTest(name):
                client = StubClient(version)
                raw = payload if isinstance(payload, bytes) else None
                code, body, _ = client.post("/api/dataValueSets" + query, None if raw is not None else payload,
                                            raw=raw)
                expected = fixture(fx)
                if transform:
                    expected = transform(expected)
                self.assertEqual(code, status, name)
                assert_same_shape(self, body, expected)
                summary = body.get("response", body)
                want = expected.get("response", expected)
                self.assertEqual(summary["importCount"], want["importCount"], name)
                self.assertEqual([c["errorCode"] for c in summary["conflicts"]],
                                 [c["errorCode"] for c in want["conflicts"]], name)
                self.assertEqual([c.get("indexes") for c in summary["conflicts"]],
                                 [c.get("indexes") for c in want["conflicts"]], name)
                if "failed" in want["description"]:
                    self.assertIn("No content to map due to end-of-input", summary["description"])

    def test_locked_messages_by_version(self) -> None:
        """E7640 text is the 2.40 template; E7619 wording differs between 2.37 and 2.40."""
        want = fixture("dataValueSets/warning_409_locked_periods_v2.40-2.42__constructed.json")["response"]
        body = StubClient("2.40").post("/api/dataValueSets", LOCKED_VALUES)[1]["response"]
        self.assertEqual(body["conflicts"][0]["value"],
                         want["conflicts"][0]["value"].replace("201401", "202401").replace("pBOMPrpg1QX", "AIus2YpTw6A"))
        self.assertEqual(body["conflicts"][1]["value"], f"Value must match value type of data element `{DE_WEIGHT}`: "
                                                        "`Data value is not numeric`")
        old = StubClient("2.37").post("/api/dataValueSets", LOCKED_VALUES)[1]
        conflict = fixture("dataValueSets/conflict_object_E7619_v2.37-2.39__android-sdk.json")
        assert_same_shape(self, old["conflicts"][1], conflict)
        self.assertEqual(old["conflicts"][1]["value"],
                         f"Value must match data element's `{DE_WEIGHT}` type constraints: Data value is not numeric")

    def test_236_plain_conflicts(self) -> None:
        """2.36: bare summary, 200, conflicts only {object, value}, no rejectedIndexes."""
        want = fixture("dataValueSets/warning_200_plain_ImportSummary_v2.36__constructed.json")
        payload = {"dataValues": [LOCKED_VALUES["dataValues"][0], LOCKED_VALUES["dataValues"][3],
                                  LOCKED_VALUES["dataValues"][1]]}
        code, body, _ = StubClient("2.36").post("/api/dataValueSets", payload)
        self.assertEqual(code, 200)
        assert_same_shape(self, body, want)
        self.assertEqual(body["conflicts"][0], {"object": "abc", "value": "Data value is not numeric, must match data "
                                                                          f"element type: {DE_WEIGHT}"})
        self.assertTrue(body["conflicts"][1]["value"].startswith("Current date is past expiry days for period 202401"))

    def test_async_job_and_polling(self) -> None:
        """async=true: job response per version; tasks/taskSummaries once the job ran on the clock."""
        for version, fx in (("2.37", "dataValueSets/async_200_job_v2.36-2.40__docs.json"),
                            ("2.40", "dataValueSets/async_200_job_v2.36-2.40__docs.json"),
                            ("2.42", "dataValueSets/async_200_job_v2.41-2.42__constructed.json")):
            with self.subTest(version):
                client = StubClient(version, job_delay=2.0)
                code, body, response = client.post("/api/dataValueSets?async=true", OK_VALUES)
                self.assertEqual(code, 200)
                assert_same_shape(self, body, fixture(fx))
                self.assertTrue(response.headers.getRawHeaders("Location")[0].endswith("/system/tasks/DATAVALUE_IMPORT"))
                job = body["response"]["id"]
                self.assertEqual(client.sim.store.data_values, {})
                _, running, _ = client.get(f"/api/system/tasks/DATAVALUE_IMPORT/{job}")
                self.assertFalse(running[0]["completed"])
                client.advance(2.0)
                _, tasks, _ = client.get(f"/api/system/tasks/DATAVALUE_IMPORT/{job}")
                self.assertTrue(tasks[0]["completed"])
                self.assertLessEqual(set(fixture("system/tasks_DATAVALUE_IMPORT_id__docs.json")[0]), set(tasks[0]))
                _, summary, _ = client.get(f"/api/system/taskSummaries/DATAVALUE_IMPORT/{job}")
                self.assertLessEqual(set(fixture("system/taskSummaries_DATAVALUE_IMPORT_id__docs.json")), set(summary))
                self.assertEqual(summary["importCount"]["imported"], 1)
                self.assertTrue(summary["importOptions"]["async"])
                self.assertEqual(len(client.sim.store.data_values), 1)
        body = StubClient("2.41").post("/api/dataValueSets?async=true", OK_VALUES)[1]
        self.assertNotIn("responseType", body["response"])
        self.assertTrue(body["message"].startswith("Initiated DATAVALUE_IMPORT ("))


def te_payload() -> dict[str, Any]:
    return {"trackedEntities": [person("e34WObjXCwl")]}


def nested_payload() -> dict[str, Any]:
    te = person("aVcGf9iO8Xp")
    te["enrollments"] = [{"enrollment": "ffcvJvWjiNZ", "program": PR_CHILD, "orgUnit": FAC_NR,
                          "enrolledAt": "2024-02-01", "events": [
                              {"event": "gTZBPT3Jq39", "programStage": PS_VACC, "orgUnit": FAC_NR,
                               "occurredAt": "2024-03-01", "status": "COMPLETED",
                               "dataValues": [{"dataElement": DE_VACCINE, "value": "BCG"}]}]}]
    return {"trackedEntities": [te]}


def with_index(report: dict[str, Any]) -> dict[str, Any]:
    """A 2.41 report as 2.40 shapes it: objectReports carry ``index``."""
    report = copy.deepcopy(report)
    for type_report in report["bundleReport"]["typeReportMap"].values():
        for obj in type_report["objectReports"]:
            errors = obj.pop("errorReports")
            obj["index"] = 0
            obj["errorReports"] = errors
    return report


class TrackerFixtureTests(SynchronousTestCase):
    """/api/tracker reports match the fixtures per version."""

    def sync(self, version: str, payload: Any, setup: Any = None) -> tuple[int, Any]:
        client = StubClient(version)
        if setup:
            code, body, _ = client.post("/api/tracker?async=false", setup)
            self.assertEqual(code, 200, body)
        code, body, _ = client.post("/api/tracker?async=false", payload)
        return code, body

    def test_ok_reports(self) -> None:
        """TE created (2.37, bundle status/stats + index); nested TE/enrollment/event (2.41; 2.40 adds index)."""
        code, body = self.sync("2.37", te_payload())
        self.assertEqual(code, 200)
        assert_same_shape(self, body, fixture("tracker/sync_200_OK_tei_created_v2.36-2.39__android-sdk.json"))
        want = fixture("tracker/sync_200_OK_import_report_v2.41__docs.json")
        for version, expected in (("2.41", want), ("2.42", want), ("2.40", with_index(want))):
            with self.subTest(version):
                code, body = self.sync(version, nested_payload())
                self.assertEqual(code, 200)
                assert_same_shape(self, body, expected)
                self.assertEqual(body["stats"], want["stats"])

    def test_error_reports(self) -> None:
        """E1041 (enrollment outside program org units), E1029 x3, E1005 with args (2.42)."""
        te = person("XJPm2lZzxtq", org_unit=FAC_CR)
        te["enrollments"] = [{"enrollment": "Ab1cDe2fGh3", "program": PR_CHILD, "orgUnit": FAC_CR,
                              "enrolledAt": "2024-02-01"}]
        code, body = self.sync("2.37", {"trackedEntities": [te]})
        self.assertEqual(code, 409)
        assert_same_shape(self, body, fixture("tracker/sync_409_ERROR_E1041_enrollment__android-sdk.json"))
        self.assertEqual(body["validationReport"]["errorReports"][0]["message"],
                         f"Enrollment OrganisationUnit: `OrganisationUnit ({FAC_CR})`, and Program: "
                         f"`Program ({PR_CHILD})`, dont match.")
        setup = {"trackedEntities": [person("Qw1Er2Ty3Ui")],
                 "enrollments": [{"enrollment": "Zx1Cv2Bn3Mq", "trackedEntity": "Qw1Er2Ty3Ui", "program": PR_CHILD,
                                  "orgUnit": FAC_NR, "enrolledAt": "2024-02-01"}]}
        events = {"events": [{"event": f"Ev{i}aaaaaaaa", "enrollment": "Zx1Cv2Bn3Mq", "programStage": PS_VACC,
                              "orgUnit": FAC_CR, "occurredAt": "2024-03-01",
                              "dataValues": [{"dataElement": DE_VACCINE, "value": "BCG"}]} for i in range(3)]}
        code, body = self.sync("2.37", events, setup)
        self.assertEqual(code, 409)
        assert_same_shape(self, body, fixture("tracker/sync_409_ERROR_E1029_3events__android-sdk.json"))
        code, body = self.sync("2.42", {"trackedEntities": [person("Kj6vYde4LHh", trackedEntityType="Q9GufDoplCL")]})
        self.assertEqual(code, 409)
        assert_same_shape(self, body, fixture("tracker/sync_409_ERROR_with_args_v2.41-2.42__constructed.json"))
        self.assertEqual(body["validationReport"]["errorReports"][0]["args"], ["Q9GufDoplCL"])

    def test_invalid_uid_by_version(self) -> None:
        """2.42: 400 JSON parse error; 2.40: E1048 in a 409 report."""
        code, body = self.sync("2.42", {"trackedEntities": [person("invalid_uid")]})
        self.assertEqual(code, 400)
        self.assertEqual(body, fixture("tracker/sync_400_invalid_uid_v2.42__dhis2-core-test.json"))
        code, body = self.sync("2.40", {"trackedEntities": [person("invalid_uid")]})
        self.assertEqual(code, 409)
        self.assertEqual(body["validationReport"]["errorReports"][0]["errorCode"], "E1048")

    def test_async_job_report(self) -> None:
        """Async: job response per version, 404 until done, then the report (E1033 keeps status 200)."""
        for version, fx in (("2.37", "tracker/async_200_job_added_v2.36-2.40__android-sdk.json"),
                            ("2.40", "tracker/async_200_job_added_v2.36-2.40__android-sdk.json"),
                            ("2.41", "tracker/async_200_job_added_v2.41__docs.json")):
            with self.subTest(version):
                client = StubClient(version, job_delay=1.0)
                event = {"events": [{"event": "PXi7gfVIk1p", "program": PR_CHILD, "programStage": PS_VACC,
                                     "orgUnit": FAC_NR, "occurredAt": "2024-03-01"}]}
                code, body, _ = client.post("/api/tracker", event)
                self.assertEqual(code, 200)
                assert_same_shape(self, body, fixture(fx))
                job = body["response"]["id"]
                code, body, _ = client.get(f"/api/tracker/jobs/{job}/report")
                self.assertEqual(code, 404)
                if version == "2.40":
                    assert_same_shape(self, body, fixture("tracker/job_report_404_not_ready_v2.40-2.42__constructed.json"))
                    self.assertEqual(body["message"], f"Summary for job {job} does not exist")
                client.advance(1.0)
                code, report, _ = client.get(f"/api/tracker/jobs/{job}/report")
                self.assertEqual(code, 200)
                if version == "2.37":
                    assert_same_shape(self, report, fixture("tracker/job_report_ERROR_E1033__android-sdk.json"))
                self.assertEqual(report["validationReport"]["errorReports"][0]["errorCode"], "E1033")
                _, notes, _ = client.get(f"/api/tracker/jobs/{job}")
                self.assertTrue(notes[0]["completed"])
                self.assertEqual(notes[0]["category"], "TRACKER_IMPORT_JOB")

    def test_validate_empty_242(self) -> None:
        """importMode=VALIDATE with {} at 2.42 matches the core test body exactly."""
        client = StubClient("2.42")
        code, body, _ = client.post("/api/tracker?async=false&importMode=VALIDATE", {})
        self.assertEqual(code, 200)
        self.assertEqual(body, fixture("tracker/sync_200_OK_empty_validate_v2.42__dhis2-core-test.json"))


class AuthAndMetadataFixtureTests(SynchronousTestCase):
    """Auth refusals, metadata writes and system endpoints match their fixtures."""

    def test_auth(self) -> None:
        """401 bad Basic, 302 no credentials (login path per version), 401/400 PAT, 403 missing authority."""
        for version in ("2.37", "2.40"):
            client = StubClient(version)
            code, body, _ = client.get("/api/me", headers=basic("admin", "wrong"))
            self.assertEqual((code, body), (401, fixture("auth/401_bad_basic_credentials__android-sdk.json")))
            code, body, response = client.get("/api/me", headers={"Authorization": "ApiToken d2pat_" + "a" * 32 +
                                                                  f"{__import__('zlib').crc32(('d2pat_' + 'a' * 32).encode()):010d}"})
            self.assertEqual((code, body), (401, fixture("auth/401_pat_unknown_token_v2.37-2.42__constructed.json")))
            self.assertTrue(response.headers.getRawHeaders("WWW-Authenticate")[0].startswith("ApiToken"))
            code, body, _ = client.get("/api/me", headers={"Authorization": "ApiToken d2pat_" + "a" * 32 + "0000000000"})
            self.assertEqual((code, body), (400, fixture("auth/400_pat_bad_checksum_v2.37-2.42__constructed.json")))
            code, body, _ = client.post("/api/dataValueSets", OK_VALUES, headers=basic("reader", "Reader123!"))
            self.assertEqual((code, body), (403, fixture("auth/403_missing_authority_F_DATAVALUE_ADD__constructed.json")))
            token = client.sim.add_pat("admin")
            code, body, _ = client.get("/api/me?fields=username", headers={"Authorization": f"ApiToken {token}"})
            self.assertEqual((code, body), (200, {"username": "admin"}))
        for version, login in (("2.40", "/dhis-web-commons/security/login.action"), ("2.41", "/dhis-web-login/")):
            code, _, response = StubClient(version).get("/api/me", headers={})
            self.assertEqual(code, 302)
            self.assertEqual(response.headers.getRawHeaders("Location"), ["http://sim.test" + login])
        code, body, _ = StubClient("2.40").get("/api/me", headers={"X-Requested-With": "XMLHttpRequest"})
        self.assertEqual((code, body["message"]), (401, "Unauthorized"))
        code, _, _ = StubClient("2.36").get("/api/me", headers={"Authorization": "ApiToken d2pat_x",
                                                                "X-Requested-With": "XMLHttpRequest"})
        self.assertEqual(code, 401)
        self.assertEqual(StubClient("2.42").post("/api/dataValueSets", OK_VALUES, headers=basic("reader", "Reader123!"))[1]
                         ["message"], "Access Denied")

    def test_org_unit_writes(self) -> None:
        """POST 201 ObjectReport keeps the id; 409 E4000; group add 204 (2.37) / 200 TypeReport (2.40)."""
        client = StubClient("2.40")
        new = {"id": "Nq3ZeSEtdyz", "name": "New clinic", "shortName": "New clinic", "openingDate": "2024-01-01",
               "code": "NEW_CLINIC", "parent": {"id": "XkHJyWD6G7A"}}
        code, body, response = client.post("/api/organisationUnits", new)
        self.assertEqual(code, 201)
        self.assertEqual(body, fixture("metadata/organisationUnit_post_201_ObjectReport_v2.38-2.42__constructed.json"))
        self.assertTrue(response.headers.getRawHeaders("Location")[0].endswith("/api/organisationUnits/Nq3ZeSEtdyz"))
        self.assertEqual(client.sim.metadata.objects["organisationUnits"]["Nq3ZeSEtdyz"]["level"], 5)
        code, body, _ = client.post("/api/organisationUnits", {"name": "X", "shortName": "X"})
        self.assertEqual((code, body), (409, fixture("metadata/organisationUnit_post_409_E4000__constructed.json")))
        code, body, _ = client.post("/api/organisationUnitGroups/mLAyN0g8IhK/organisationUnits/Nq3ZeSEtdyz")
        self.assertEqual((code, body), (200, fixture("metadata/collection_add_200_TypeReport_v2.38-2.42__constructed.json")))
        code, _, _ = StubClient("2.37").post(f"/api/organisationUnitGroups/mLAyN0g8IhK/organisationUnits/{FAC_NR}")
        self.assertEqual(code, 204)

    def test_metadata_reads(self) -> None:
        """dataSet nested fields, fields-filtered org-unit page, levels and system endpoints have fixture shapes."""
        client = StubClient("2.40")
        fields = ("id,code,name,periodType,openFuturePeriods,expiryDays,categoryCombo[id,categoryOptionCombos[id,code,"
                  "name]],dataSetElements[dataElement[id,code,valueType,categoryCombo[id,categoryOptionCombos[id,code,"
                  "name]]],categoryCombo[id]]")
        _, ds, _ = client.get(f"/api/dataSets/{DS_HMIS}?fields={fields}")
        want = fixture("metadata/dataSet_with_dataSetElements_cocs__constructed.json")
        assert_same_shape(self, ds, want, superset=("dataSetElements[0]",))
        override = [e for e in ds["dataSetElements"] if "categoryCombo" in e]
        self.assertEqual(override, [{"dataElement": override[0]["dataElement"], "categoryCombo": {"id": "bjDvmb4bfuf"}}])
        _, page, _ = client.get("/api/organisationUnits?page=1&pageSize=2&fields=id,code,name,level,path,parent[id],"
                                "lastUpdated&filter=level:eq:5")
        assert_same_shape(self, page, fixture("metadata/organisationUnits_page_fields_filtered__constructed.json"))
        self.assertEqual(page["pager"]["total"], 32)
        _, levels, _ = client.get("/api/organisationUnitLevels?paging=false&fields=id,name,level,created,lastUpdated,"
                                  "displayName")
        self.assertEqual(sorted(lv["level"] for lv in levels["organisationUnitLevels"]), [1, 2, 3, 4, 5])
        self.assertIn("District/City", [lv["name"] for lv in levels["organisationUnitLevels"]])
        _, info, _ = client.get("/api/system/info", headers=basic("reader", "Reader123!"))
        self.assertLessEqual(set(fixture("system/system_info_v2.40_non_superuser__constructed.json")), set(info))
        self.assertNotIn("javaVersion", info)
        _, ids, _ = client.get("/api/system/id?limit=3")
        assert_same_shape(self, ids, fixture("system/system_id_limit3__docs.json"))
        self.assertEqual(len(ids["codes"]), 3)
        self.assertEqual(StubClient("2.40.3").get("/api/system/info?fields=version")[1], {"version": "2.40.3"})
