"""Every DHIS2 reference fixture through its interpretation function, with the outcome it must give.

The table `CASES` lists each file under the reference sub-folders of
``tests/fixtures`` (auth, dataValueSets, metadata, system, tracker) exactly
once; `FixtureTableCoverageTests` fails when a fixture has no expectation.
One test method is generated per row, so a failure names the fixture.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from dhis2gw.dhis2.http_rules import interpret_json_read
from dhis2gw.dhis2.interpret import (
    interpret_data_value_set_response,
    interpret_job_notifications,
    interpret_metadata_response,
    interpret_task_summary,
    normalise_conflict,
)
from dhis2gw.dhis2.metadata import parse_data_set
from dhis2gw.dhis2.outcome import JobRef, Outcome, OutcomeKind
from dhis2gw.dhis2.tracker_reports import (
    interpret_job_configuration,
    interpret_tracker_job_report,
    interpret_tracker_response,
)
from dhis2gw.dhis2.uids import is_valid_uid
from dhis2gw.dhis2.versions import parse_version
from tests.dhis2 import dhis2w_fixture_checks as checks
from tests.dhis2.fixture_files import all_fixture_files, fixture_bytes

K = OutcomeKind
REFERENCE_FOLDERS = ("auth", "dataValueSets", "jobs", "metadata", "openapi", "system", "tracker")


@dataclass
class Case:
    """One fixture, the function that reads it, the HTTP status it comes with, and what must come out."""

    path: str
    reader: Callable[..., Any]
    status: int
    kind: OutcomeKind | None = None
    reason: str | None = None
    import_count: dict[str, int] | None = None
    stats: dict[str, int] | None = None
    conflicts: list[tuple[str | None, list[int]]] | None = None
    rejected: list[int] | None = None
    errors: list[tuple[str, str | None, str | None]] | None = None
    warnings: list[str] | None = None
    job: tuple[str, str] | None = None
    check: Callable[[SynchronousTestCase, Any], None] | None = None
    headers: dict[str, str] = field(default_factory=dict)


def dvs(path: str, status: int, kind: OutcomeKind, **kw: Any) -> Case:
    return Case(f"dataValueSets/{path}", interpret_data_value_set_response, status, kind, **kw)


def trk(path: str, status: int, kind: OutcomeKind, **kw: Any) -> Case:
    return Case(f"tracker/{path}", interpret_tracker_response, status, kind, **kw)


def counts(imported: int, updated: int, ignored: int, deleted: int) -> dict[str, int]:
    return {"imported": imported, "updated": updated, "ignored": ignored, "deleted": deleted}


def stats(created: int, updated: int, deleted: int, ignored: int, total: int) -> dict[str, int]:
    return {"created": created, "updated": updated, "deleted": deleted, "ignored": ignored, "total": total}


def _body_has(key: str, value: Any) -> Callable[[SynchronousTestCase, Any], None]:
    def check(test: SynchronousTestCase, outcome: Any) -> None:
        test.assertEqual(outcome.body[key], value)
    return check


def _check_conflict_object(test: SynchronousTestCase, conflict: Any) -> None:
    test.assertEqual(conflict, {
        "object": "UOlfIjgN8X6",
        "objects": {"dataElement": "UOlfIjgN8X6", "value": "value_not_numeric"},
        "value": "Value must match data element's `UOlfIjgN8X6` type constraints: Data value is not numeric",
        "message": "Value must match data element's `UOlfIjgN8X6` type constraints: Data value is not numeric",
        "errorCode": "E7619",
        "property": "value",
        "indexes": [2, 7],
    })


def _check_data_set(test: SynchronousTestCase, structure: Any) -> None:
    test.assertEqual(structure.id, "pBOMPrpg1QX")
    test.assertEqual(structure.period_type, "Monthly")
    test.assertEqual(structure.attribute_option_combos, {"HllvX50cXC0"})
    test.assertEqual(set(structure.elements), {"f7n9E0hX8qk", "Ix2HsbDMLea"})
    test.assertEqual(structure.elements["f7n9E0hX8qk"].category_option_combos, {"HllvX50cXC0"})
    # The dataSetElement override names only the combo id: the element's own COCs apply.
    dysentery = structure.elements["Ix2HsbDMLea"]
    test.assertEqual(dysentery.category_combo, "t3aNCvHsoSn")
    test.assertEqual(dysentery.category_option_combos, {"S34ULMcHMca", "wHBMVthqIX4"})
    test.assertEqual(structure.element_by_code("DE_DYSENTERY"), dysentery)


def _check_version(expected: tuple[int, int, int]) -> Callable[[SynchronousTestCase, Any], None]:
    def check(test: SynchronousTestCase, outcome: Any) -> None:
        test.assertEqual(parse_version(outcome.body["version"]), expected)
    return check


def _check_progress(completed: bool, message: str) -> Callable[[SynchronousTestCase, Any], None]:
    def check(test: SynchronousTestCase, progress: Any) -> None:
        test.assertEqual((progress.known, progress.completed, progress.message), (True, completed, message))
    return check


def _check_uids(test: SynchronousTestCase, outcome: Any) -> None:
    test.assertEqual(outcome.body["codes"], ["Y0moqFplrX4", "WI0VHXuWQuV", "BRJNBBpu4ki"])
    test.assertTrue(all(is_valid_uid(c) for c in outcome.body["codes"]))


def _check_pager(page_count: int, first_id: str) -> Callable[[SynchronousTestCase, Any], None]:
    def check(test: SynchronousTestCase, outcome: Any) -> None:
        test.assertEqual(outcome.body["pager"]["pageCount"], page_count)
        test.assertEqual(outcome.body["organisationUnits"][0]["id"], first_id)
    return check


def _read_conflict(status: int, headers: Any, body: bytes, now: Any = None) -> Any:
    return normalise_conflict(json.loads(body))


def _read_data_set(status: int, headers: Any, body: bytes, now: Any = None) -> Any:
    return parse_data_set(json.loads(body))


def _read_notifications(status: int, headers: Any, body: bytes, now: Any = None) -> Any:
    return interpret_job_notifications(body)


def _read_task_summary(status: int, headers: Any, body: bytes, now: Any = None) -> Any:
    return interpret_task_summary(status, headers, body, now=now, job=JobRef("YR1UxOUXmzT", "DATAVALUE_IMPORT"))


def _read_job_report(status: int, headers: Any, body: bytes, now: Any = None) -> Any:
    return interpret_tracker_job_report(status, headers, body, now=now, job_id="cHh2OCTJvRw")


# ---------------------------------------------------------------- 2.43/2.44 (dhis2w) fixture readers
def _wrapped(reader: Callable[..., Any], key: str = "body") -> Callable[..., Any]:
    """Read a dhis2w fixture whose answer sits under ``body`` (``_provenance`` beside it)."""
    def read(status: int, headers: Any, body: bytes, now: Any = None) -> Any:
        return reader(status, headers, json.dumps(json.loads(body)[key]).encode(), now=now)
    return read


def _read_observed_conflicts(status: int, headers: Any, body: bytes, now: Any = None) -> Any:
    return [normalise_conflict(c) for c in json.loads(body)["conflicts"]]


def _check_observed_conflicts(test: SynchronousTestCase, conflicts: Any) -> None:
    by_code = {c["errorCode"]: c for c in conflicts}
    test.assertEqual(len(by_code), 12)
    for conflict in conflicts:
        test.assertTrue(conflict["message"], conflict)
    # The E8122 row is found from objects.args, E8120 from "Value #0", never from ``object``.
    test.assertEqual(by_code["E8122"]["indexes"], [0])
    test.assertIn("INTEGER", by_code["E8122"]["message"])
    test.assertEqual(by_code["E8120"]["indexes"], [0])
    test.assertEqual(by_code["E8030"]["indexes"], [])
    test.assertTrue(all(c["object"] is None for c in conflicts))


def _read_semantics(status: int, headers: Any, body: bytes, now: Any = None) -> Any:
    first = json.loads(body)["first_write_of_new_tuple"]
    return {version: interpret_data_value_set_response(200, {}, json.dumps({
        "httpStatus": "OK", "httpStatusCode": 200, "status": "OK", "response": {
            "responseType": "ImportSummary", "status": "SUCCESS",
            "importCount": dict(first[version], ignored=0, deleted=0), "conflicts": []}}).encode())
        for version in first}


def _check_semantics(test: SynchronousTestCase, outcomes: Any) -> None:
    """A first write is delivered whether it is counted as imported (<=2.42) or updated (2.43+)."""
    test.assertEqual(set(outcomes), {"2.41/2.42", "2.43/2.44"})
    for outcome in outcomes.values():
        test.assertEqual(outcome.kind, K.DELIVERED)
    test.assertEqual(outcomes["2.43/2.44"].import_count["updated"], 1)


def _read_sql_409(status: int, headers: Any, body: bytes, now: Any = None) -> Any:
    cases = {k: v["body"] for k, v in json.loads(body).items() if isinstance(v, dict) and "body" in v}
    return {(name, reader.__name__): reader(409, {}, json.dumps(answer).encode())
            for name, answer in cases.items()
            for reader in (interpret_data_value_set_response, interpret_tracker_response, interpret_metadata_response)}


def _check_sql_409(test: SynchronousTestCase, outcomes: Any) -> None:
    test.assertEqual(len(outcomes), 6)
    for key, outcome in outcomes.items():
        test.assertEqual((outcome.kind, outcome.reason), (K.RETRY, "sql_error"), key)


def _read_raw_500(status: int, headers: Any, body: bytes, now: Any = None) -> Any:
    return interpret_data_value_set_response(500, {}, json.dumps(json.loads(body)["webmessage_500_npe"]).encode())


def _read_login_paths(status: int, headers: Any, body: bytes, now: Any = None) -> Any:
    paths = json.loads(body)["login_paths"]
    return {version: interpret_json_read(302, {"Location": "https://dhis2.example.org" + text.split()[0]}, b"")
            for version, text in paths.items()}


def _check_login_paths(test: SynchronousTestCase, outcomes: Any) -> None:
    test.assertEqual(set(outcomes), {"2.41-2.42", "2.43-2.44", "<=2.40"})
    for version, outcome in outcomes.items():
        test.assertEqual((outcome.kind, outcome.reason), (K.DESTINATION_FAILURE, "auth"), version)


def _read_wiped_feed(status: int, headers: Any, body: bytes, now: Any = None) -> Any:
    data = json.loads(body)
    emptied = data["timeline_ANALYTICS_TABLE_polled_every_0.5s"][-1]["body"]
    fallback = data["fallback_GET_/api/jobConfigurations/{id}?fields=jobStatus,lastExecutedStatus"]
    return (interpret_job_notifications(json.dumps(emptied).encode()),
            interpret_job_configuration(200, {}, json.dumps(fallback).encode(), job=JobRef("j1", "DATAVALUE_IMPORT")))


def _check_wiped_feed(test: SynchronousTestCase, result: Any) -> None:
    progress, outcome = result
    test.assertFalse(progress.known)
    test.assertEqual((outcome.kind, outcome.reason), (K.RETRY, "job_failed"))


CASES: list[Case] = [
    # ---------------------------------------------------------------- auth
    Case("auth/400_pat_bad_checksum_v2.37-2.42__constructed.json", interpret_data_value_set_response, 400,
         K.DESTINATION_FAILURE, "auth"),
    Case("auth/401_bad_basic_credentials__android-sdk.json", interpret_data_value_set_response, 401,
         K.DESTINATION_FAILURE, "auth"),
    Case("auth/401_pat_unknown_token_v2.37-2.42__constructed.json", interpret_tracker_response, 401,
         K.DESTINATION_FAILURE, "auth"),
    Case("auth/403_forbidden_webmessage__docs.json", interpret_metadata_response, 403, K.DESTINATION_FAILURE, "auth"),
    Case("auth/403_missing_authority_F_DATAVALUE_ADD__constructed.json", interpret_data_value_set_response, 403,
         K.DESTINATION_FAILURE, "auth"),
    Case("auth/pat_create_201_v2.37__docs.json", interpret_metadata_response, 201, K.DELIVERED,
         check=lambda t, o: t.assertEqual(o.body["response"]["uid"], "jJYrtIVP7qU")),
    # ---------------------------------------------------------------- dataValueSets
    dvs("async_200_job_v2.36-2.40__docs.json", 200, K.ACCEPTED_ASYNC, reason="async_job",
        job=("YR1UxOUXmzT", "DATAVALUE_IMPORT")),
    dvs("async_200_job_v2.41-2.42__constructed.json", 200, K.ACCEPTED_ASYNC, reason="async_job",
        job=("vKqZ0RjnNMd", "DATAVALUE_IMPORT")),
    Case("dataValueSets/conflict_object_E7619_v2.37-2.39__android-sdk.json", _read_conflict, 200,
         check=_check_conflict_object),
    dvs("error_409_aborted_E7600_v2.39-2.42__constructed.json", 409, K.REJECTED, reason="import_aborted",
        import_count=counts(0, 0, 0, 0), conflicts=[("E7600", [])], rejected=[]),
    dvs("error_409_unparseable_payload_v2.38-2.42__constructed.json", 409, K.REJECTED, reason="import_failed",
        import_count=counts(0, 0, 0, 0), conflicts=[], rejected=[]),
    dvs("success_200_dryRun_v2.40.9__public-test-module.json", 200, K.DELIVERED,
        import_count=counts(1, 0, 0, 0), conflicts=[], rejected=[]),
    dvs("success_200_v2.38plus__android-sdk.json", 200, K.DELIVERED, import_count=counts(0, 3, 0, 0),
        conflicts=[], rejected=[]),
    dvs("warning_200_plain_ImportSummary_v2.36__constructed.json", 200, K.PARTIAL, reason="conflicts",
        import_count=counts(1, 0, 2, 0), conflicts=[(None, []), (None, [])], rejected=[],
        check=lambda t, o: t.assertEqual([c["object"] for c in o.conflicts], ["abc", "201401"])),
    dvs("warning_409_E7610_v2.40.9__public-test-module.json", 409, K.PARTIAL, reason="conflicts",
        import_count=counts(1, 0, 2, 0), conflicts=[("E7610", [1]), ("E7610", [2])], rejected=[1, 2]),
    dvs("warning_409_E7612_v2.40.9__public-test-module.json", 409, K.PARTIAL, reason="conflicts",
        import_count=counts(1, 0, 2, 0), conflicts=[("E7612", [1]), ("E7612", [2])], rejected=[1, 2]),
    dvs("warning_409_locked_periods_v2.40-2.42__constructed.json", 409, K.PARTIAL, reason="conflicts",
        import_count=counts(1, 0, 3, 0), conflicts=[("E7640", [1, 2]), ("E7619", [3])], rejected=[1, 2, 3]),
    # ---------------------------------------------------------------- metadata
    Case("metadata/collection_add_200_TypeReport_v2.38-2.42__constructed.json", interpret_metadata_response, 200,
         K.DELIVERED, stats=stats(0, 1, 0, 0, 1), errors=[]),
    Case("metadata/dataSet_with_dataSetElements_cocs__constructed.json", _read_data_set, 200, check=_check_data_set),
    Case("metadata/me_v2.38__android-sdk.json", interpret_json_read, 200, K.DELIVERED,
         check=_body_has("username", "android")),
    Case("metadata/organisationUnitLevels_paging_false__android-sdk.json", interpret_json_read, 200, K.DELIVERED,
         check=lambda t, o: t.assertEqual(len(o.body["organisationUnitLevels"]), 4)),
    Case("metadata/organisationUnit_post_201_ObjectReport_v2.38-2.42__constructed.json", interpret_metadata_response,
         201, K.DELIVERED, errors=[], check=lambda t, o: t.assertIn("Nq3ZeSEtdyz", o.message)),
    Case("metadata/organisationUnit_post_409_E4000__constructed.json", interpret_metadata_response, 409, K.REJECTED,
         reason="metadata_errors", errors=[("E4000", None, None)],
         check=lambda t, o: t.assertEqual(o.error_reports[0]["property"], "openingDate")),
    Case("metadata/organisationUnits_page1_v2.28_play__blsq-dhis2.json", interpret_json_read, 200, K.DELIVERED,
         check=_check_pager(27, "Rp268JB6Ne4")),
    Case("metadata/organisationUnits_page_fields_filtered__constructed.json", interpret_json_read, 200, K.DELIVERED,
         check=_check_pager(666, "Rp268JB6Ne4")),
    # ---------------------------------------------------------------- system
    Case("system/500_unexpected_error__constructed.json", interpret_data_value_set_response, 500, K.SUSPECT,
         "server_error"),
    Case("system/502_bad_gateway_nginx__constructed.html", interpret_tracker_response, 502, K.DESTINATION_FAILURE,
         "http_502", check=lambda t, o: t.assertIn("502 Bad Gateway", o.body)),
    Case("system/503_analytics_maintenance_mode__constructed.json", interpret_data_value_set_response, 503,
         K.DESTINATION_FAILURE, "http_503", headers={"Retry-After": "120"},
         check=lambda t, o: t.assertEqual(o.retry_after, 120.0)),
    Case("system/504_gateway_timeout_nginx__constructed.html", interpret_data_value_set_response, 504,
         K.DESTINATION_FAILURE, "http_504"),
    Case("system/system_id_limit3__docs.json", interpret_json_read, 200, K.DELIVERED, check=_check_uids),
    Case("system/system_info__docs.json", interpret_json_read, 200, K.DELIVERED, check=_check_version((2, 13, 0))),
    Case("system/system_info_v2.28_play__blsq-dhis2.json", interpret_json_read, 200, K.DELIVERED,
         check=_check_version((2, 28, 0))),
    Case("system/system_info_v2.40_non_superuser__constructed.json", interpret_json_read, 200, K.DELIVERED,
         check=_check_version((2, 40, 3))),
    Case("system/taskSummaries_DATAVALUE_IMPORT_id__docs.json", _read_task_summary, 200, K.DELIVERED,
         import_count=counts(0, 431, 0, 0), conflicts=[]),
    Case("system/tasks_DATAVALUE_IMPORT_id__docs.json", _read_notifications, 200,
         check=_check_progress(True, "Import done")),
    Case("system/tasks_DATAVALUE_IMPORT_id_running_then_done_v2.41__constructed.json", _read_notifications, 200,
         check=_check_progress(True, "Import complete with status SUCCESS, 120 created, 3 updated, 0 deleted, "
                                     "2 ignored")),
    # ---------------------------------------------------------------- tracker
    trk("async_200_job_added_v2.36-2.40__android-sdk.json", 200, K.ACCEPTED_ASYNC, reason="async_job",
        job=("LkXBUdIgbe3", "TRACKER_IMPORT_JOB")),
    trk("async_200_job_added_v2.36__docs.json", 200, K.ACCEPTED_ASYNC, job=("LkXBUdIgbe3", "TRACKER_IMPORT_JOB")),
    trk("async_200_job_added_v2.41__docs.json", 200, K.ACCEPTED_ASYNC, job=("cHh2OCTJvRw", "TRACKER_IMPORT_JOB")),
    trk("deprecated_api_events_409_ImportSummaries__android-sdk.json", 409, K.REJECTED, reason="import_aborted",
        import_count=counts(0, 0, 3, 0), conflicts=[(None, [])] * 3,
        check=lambda t, o: t.assertEqual([c["reference"] for c in o.conflicts], ["event1Id", "event2Id", "event3Id"])),
    Case("tracker/job_notifications_completed_v2.41__android-sdk.json", _read_notifications, 200,
         check=_check_progress(True, "Import complete with status OK, 0 created, 1 updated, 0 deleted, 0 ignored")),
    Case("tracker/job_notifications_validate_v2.41__docs.json", _read_notifications, 200,
         check=_check_progress(True, "Import complete with status OK, 0 created, 0 updated, 0 deleted, 0 ignored")),
    Case("tracker/job_report_404_not_ready_v2.40-2.42__constructed.json", _read_job_report, 404, K.PENDING,
         "job_report_not_ready", job=("cHh2OCTJvRw", "TRACKER_IMPORT_JOB")),
    Case("tracker/job_report_ERROR_E1033__android-sdk.json", _read_job_report, 200, K.REJECTED, "validation_errors",
         stats=stats(0, 0, 0, 1, 1), errors=[("E1033", "EVENT", "PXi7gfVIk1p")]),
    trk("sync_200_OK_empty_validate_v2.42__dhis2-core-test.json", 200, K.DELIVERED, stats=stats(0, 0, 0, 0, 0),
        errors=[], warnings=[]),
    trk("sync_200_OK_import_report_v2.41__docs.json", 200, K.DELIVERED, stats=stats(3, 0, 0, 0, 3), errors=[]),
    trk("sync_200_OK_tei_created_v2.36-2.39__android-sdk.json", 200, K.DELIVERED, stats=stats(1, 0, 0, 0, 1),
        errors=[]),
    trk("sync_200_WARNING_warningCode__constructed.json", 200, K.DELIVERED, reason="warnings",
        stats=stats(0, 1, 0, 0, 1), errors=[], warnings=["E1308"],
        check=lambda t, o: t.assertEqual(o.warning_reports[0]["uid"], "ZwwuwNp6gVd")),
    trk("sync_400_invalid_uid_v2.42__dhis2-core-test.json", 400, K.REJECTED, reason="http_400",
        check=lambda t, o: t.assertIn("invalid_uid", o.message)),
    trk("sync_409_ERROR_E1029_3events__android-sdk.json", 409, K.REJECTED, reason="validation_errors",
        stats=stats(0, 0, 0, 3, 3),
        errors=[("E1029", "EVENT", "event1Id"), ("E1029", "EVENT", "event2Id"), ("E1029", "EVENT", "event3Id")]),
    trk("sync_409_ERROR_E1041_enrollment__android-sdk.json", 409, K.REJECTED, reason="validation_errors",
        stats=stats(0, 0, 0, 2, 2), errors=[("E1041", "ENROLLMENT", "XJPm2lZzxtq")]),
    trk("sync_409_ERROR_with_args_v2.41-2.42__constructed.json", 409, K.REJECTED, reason="validation_errors",
        stats=stats(0, 0, 0, 1, 1), errors=[("E1005", "TRACKED_ENTITY", "Kj6vYde4LHh")],
        check=lambda t, o: t.assertEqual(o.error_reports[0]["args"], ["Q9GufDoplCL"])),
    trk("sync_422_idscheme_missing_v2.42__docs.json", 422, K.REJECTED, reason="http_422",
        check=lambda t, o: t.assertIn("ProgramStage[ATTRIBUTE:Y1LUDU8sWBR]", o.message)),
    # ---------------------------------------------------------------- 2.43 / 2.44 (dhis2w)
    Case("auth/401_oauth2_token_server_off_and_generic_v2.42-2.44__dhis2w-issues-verbatim.json",
         _wrapped(interpret_json_read), 401, K.DESTINATION_FAILURE, "auth"),
    Case("dataValueSets/completeDataSetRegistrations_409_flush_BatchHandler_v2.43-2.44__dhis2w-issues-reconstructed"
         ".json", _wrapped(interpret_data_value_set_response), 409, K.RETRY, "batch_handler_flush",
         import_count=counts(0, 0, 0, 0)),
    Case("dataValueSets/conflicts_E80xx_E81xx_messages_observed_v2.43-2.44__dhis2w-issues.json",
         _read_observed_conflicts, 409, check=_check_observed_conflicts),
    Case("dataValueSets/error_409_E8002_multiple_datasets_v2.43-2.44__dhis2w-issues-reconstructed.json",
         _wrapped(interpret_data_value_set_response), 409, K.REJECTED, "import_aborted",
         import_count=counts(0, 0, 0, 0), conflicts=[("E8002", [])], rejected=[]),
    Case("dataValueSets/error_409_E8030_untimely_non_superuser_v2.43-2.44__dhis2w-issues-reconstructed.json",
         _wrapped(interpret_data_value_set_response), 409, K.REJECTED, "nothing_stored",
         import_count=counts(0, 0, 0, 0), conflicts=[("E8030", [])], rejected=[0]),
    Case("dataValueSets/error_409_E8122_only_row_invalid_v2.43-2.44__dhis2w-issues-reconstructed.json",
         _wrapped(interpret_data_value_set_response), 409, K.REJECTED, "nothing_stored",
         import_count=counts(0, 0, 1, 0), conflicts=[("E8122", [0])], rejected=[0]),
    Case("dataValueSets/error_500_dryRun_NPE_DataEntryGroup_v2.43.2-2.44__dhis2w-issues-verbatim.json",
         _wrapped(interpret_data_value_set_response), 500, K.SUSPECT, "server_error",
         check=lambda t, o: t.assertIn("DataEntryGroup", o.message)),
    Case("dataValueSets/semantics_changes_importCount_v2.41-2.44__dhis2w-issues.json", _read_semantics, 200,
         check=_check_semantics),
    Case("dataValueSets/warning_200_mixed_batch_v2.43-2.44__dhis2w-issues-reconstructed.json",
         _wrapped(interpret_data_value_set_response), 200, K.PARTIAL, "conflicts",
         import_count=counts(0, 1, 1, 0), conflicts=[("E8122", [1])], rejected=[1]),
    Case("jobs/failed_job_feed_cleared_v2.44__dhis2w-issues.json", _read_wiped_feed, 200, check=_check_wiped_feed),
    Case("system/409_sql_error_as_webmessage_v2.41-2.42__dhis2w-issues-verbatim.json", _read_sql_409, 409,
         check=_check_sql_409),
    Case("system/500_raw_exception_messages_v2.41-2.44__dhis2w-issues.json", _read_raw_500, 500, K.SUSPECT,
         "server_error"),
    Case("system/readiness_and_container_v2.41-2.44__dhis2w.json", _read_login_paths, 302, check=_check_login_paths),
    Case("tracker/sync_409_E1055_enrollmentCategoryCombo_v2.43-2.44__dhis2w-issues-partial.json",
         _wrapped(interpret_tracker_response, "body_partial"), 409, K.REJECTED, "validation_errors",
         errors=[("E1055", "ENROLLMENT", None)]),
    # ---------------------------------------------------------------- dhis2w: headers, schemas, variants
    Case("auth/401_bearer_jwt_refused_headers_v2.42-2.44__dhis2w-issues.json", checks.read_bearer_401, 401,
         check=checks.check_all_auth),
    Case("auth/409_oauth2client_registration_rules_v2.43.2-2.44__dhis2w-issues.json",
         checks.read_oauth2_client_409, 409, check=checks.check_oauth2_client_409),
    Case("auth/oauth2_v41_uaa_token__dhis2w-issues-verbatim.json", checks.read_uaa_token, 200,
         check=checks.check_uaa_token),
    Case("auth/pat_v2_create_request_response__dhis2w-docs.json", checks.read_pat_v2, 200, check=checks.check_pat_v2),
    Case("auth/openapi_LoginRequest_LoginResponse_v2.43.2__dhis2w-openapi.json", checks.read_login_schema, 200,
         check=checks.check_login_schema),
    Case("openapi/openapi_enum_ErrorCode_v2.43.2__dhis2w-openapi.json", checks.read_error_codes, 200,
         check=checks.check_error_codes),
    Case("openapi/openapi_schemas_ImportSummary_ImportConflict_ImportCount_ImportOptions_v2.43.2__dhis2w-openapi.json",
         checks.read_import_schemas, 200, check=checks.check_import_schemas),
    Case("openapi/openapi_schema_JobConfiguration_v2.43.2__dhis2w-openapi.json", checks.read_job_configuration, 200,
         check=checks.check_job_configuration),
    Case("openapi/openapi_paths_tracker_jobs_v2.43.2__dhis2w-openapi.json", checks.read_tracker_job_paths, 200,
         check=checks.check_tracker_job_paths),
    Case("tracker/models_TrackerImportReport_and_job_responses_v2.41-2.44__dhis2w-generated-models.json",
         checks.read_tracker_models, 409, check=checks.check_tracker_models),
    Case("tracker/read_400_program_required_events_v2.43-2.44__dhis2w-issues.json", checks.read_program_required, 400,
         check=checks.check_program_required),
    Case("tracker/errorReport_E1302_value_type_v2.42-2.44__dhis2w-issues-verbatim.json", checks.read_e1302, 409,
         check=checks.check_e1302),
    Case("tracker/E1079_message_variants_v2.42-2.44__dhis2w-issues.json", checks.read_e1079, 409,
         check=checks.check_e1079),
]


def _run_case(test: SynchronousTestCase, case: Case) -> None:
    result = case.reader(case.status, case.headers, fixture_bytes(case.path), now=1_700_000_000.0)
    if case.kind is not None:
        test.assertIsInstance(result, Outcome)
        test.assertEqual(result.kind, case.kind, result.message)
        test.assertEqual(result.http_status, case.status)
    if case.reason is not None:
        test.assertEqual(result.reason, case.reason)
    if case.import_count is not None:
        test.assertEqual(dict(result.import_count), case.import_count)
    if case.stats is not None:
        test.assertEqual(dict(result.stats), case.stats)
    if case.conflicts is not None:
        test.assertEqual([(c["errorCode"], c["indexes"]) for c in result.conflicts], case.conflicts)
        for conflict in result.conflicts:
            test.assertTrue(conflict["message"], "every conflict keeps its message")
    if case.rejected is not None:
        test.assertEqual(list(result.rejected_indexes), case.rejected)
    if case.errors is not None:
        test.assertEqual([(e["code"], e["trackerType"], e["uid"]) for e in result.error_reports], case.errors)
    if case.warnings is not None:
        test.assertEqual([w["code"] for w in result.warning_reports], case.warnings)
    if case.job is not None:
        test.assertEqual((result.job.id, result.job.job_type), case.job)
    elif isinstance(result, Outcome):
        test.assertIsNone(result.job)
    if case.check is not None:
        case.check(test, result)


class FixtureOutcomeTests(SynchronousTestCase):
    """One generated test per fixture: ``test_<folder>__<file>`` (see `CASES`)."""


def _make_test(case: Case) -> Callable[[SynchronousTestCase], None]:
    def test(self: SynchronousTestCase) -> None:
        _run_case(self, case)
    test.__doc__ = f"{case.path} read with HTTP {case.status} gives the outcome the rules table demands."
    return test


for _case in CASES:
    _name = "test_" + re.sub(r"\W", "_", _case.path.rsplit(".", 1)[0])
    setattr(FixtureOutcomeTests, _name, _make_test(_case))


class FixtureTableCoverageTests(SynchronousTestCase):
    """The table and the fixture folder stay in step."""

    def test_every_fixture_has_exactly_one_expectation(self) -> None:
        """A fixture added to a reference folder without a row in CASES fails here."""
        on_disk = {p for p in all_fixture_files() if p.split("/", 1)[0] in REFERENCE_FOLDERS}
        listed = [case.path for case in CASES]
        self.assertEqual(len(listed), len(set(listed)), "a fixture is listed twice")
        self.assertEqual(set(listed) ^ on_disk, set(), "fixtures without expectation / rows without file")
        self.assertEqual(len(on_disk), 80)

    def test_status_in_file_name_matches_table(self) -> None:
        """Where a file name states its HTTP status, the row feeds exactly that status."""
        for case in CASES:
            name = case.path.rsplit("/", 1)[1]
            found = re.search(r"(?:^|_)([1-5]\d\d)(?=_)", name)
            if found:
                self.assertEqual(int(found.group(1)), case.status, case.path)
