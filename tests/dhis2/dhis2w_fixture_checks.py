"""Readers and checks for the dhis2w fixtures that are not one HTTP answer (OpenAPI slices, message
variants, header lists, token and login schemas). Used by the CASES table of test_fixture_outcomes.

Each reader turns the fixture into what the gateway meets on the wire (or into the gateway's own
tables the fixture constrains); each check says what the gateway must make of it.
"""
from __future__ import annotations

import json
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from dhis2gw.dhis2.auth import ApiTokenAuth, BasicAuth
from dhis2gw.dhis2.conflicts import CHUNK_ABORT_CODES, UNTIMELY_CODES
from dhis2gw.dhis2.http_rules import interpret_json_read
from dhis2gw.dhis2.interpret import interpret_data_value_set_response, interpret_metadata_response
from dhis2gw.dhis2.outcome import JobRef
from dhis2gw.dhis2.outcome import OutcomeKind as K
from dhis2gw.dhis2.tracker_reports import (
    interpret_job_configuration,
    interpret_tracker_job_report,
    interpret_tracker_response,
)
from dhis2gw.mapping.prevalidation import CODES as PREVALIDATION_CODES
from dhis2gw.sim.entry_pipeline import CODES as SIM_243_CODES

JSON = {"Content-Type": "application/json"}


def _report(errors: list[dict[str, Any]]) -> bytes:
    """A 409 TrackerImportReport carrying ``errors`` (shape of the generated models, 2.41-2.44)."""
    return json.dumps({"status": "ERROR", "validationReport": {"errorReports": errors, "warningReports": []},
                       "stats": {"created": 0, "updated": 0, "deleted": 0, "ignored": len(errors),
                                 "total": len(errors)},
                       "bundleReport": {"typeReportMap": {}}, "message": ""}).encode()


# ------------------------------------------------------------------------------------- auth
def read_bearer_401(status: int, headers: Any, body: bytes, now: Any = None) -> Any:
    """Each observed ``WWW-Authenticate`` on a 401 (and the 2.41 JSON body) through the import reader."""
    data = json.loads(body)
    out = {}
    for key, value in data.items():
        if key.startswith("_") or key == "provider_parse_failed_v41":
            continue
        header = value.split(": ", 1)[1] if value.startswith("WWW-Authenticate:") else f"Bearer {value}"
        out[key] = interpret_data_value_set_response(401, dict(JSON, **{"WWW-Authenticate": header}), b"")
    out["provider_parse_failed_v41"] = interpret_data_value_set_response(
        401, JSON, json.dumps(data["provider_parse_failed_v41"]).encode())
    return out


def check_all_auth(test: SynchronousTestCase, outcomes: dict[str, Any]) -> None:
    """Every 401 is the destination's auth failure (breaker reason ``auth``), never a verdict on a payload."""
    test.assertGreaterEqual(len(outcomes), 4)
    for key, outcome in outcomes.items():
        test.assertEqual((outcome.kind, outcome.reason), (K.DESTINATION_FAILURE, "auth"), key)


def read_oauth2_client_409(status: int, headers: Any, body: bytes, now: Any = None) -> Any:
    """The 409 E1004 refusals of ``POST /api/oAuth2Clients`` as WebMessages through the metadata reader."""
    data = json.loads(body)
    return {key: interpret_metadata_response(
        409, JSON, json.dumps({"httpStatus": "Conflict", "httpStatusCode": 409, "status": "ERROR",
                               "message": value["message"], "errorCode": value["errorCode"]}).encode())
        for key, value in data.items() if isinstance(value, dict) and value.get("http") == 409}


def check_oauth2_client_409(test: SynchronousTestCase, outcomes: dict[str, Any]) -> None:
    """A 409 E1004 on a metadata write is a refusal of that write (the gateway itself uses Basic or PAT)."""
    test.assertEqual(set(outcomes), {"scope_ALL", "pkce_disabled", "client_credentials_grant_2.44"})
    for key, outcome in outcomes.items():
        test.assertEqual(outcome.kind, K.REJECTED, key)
        test.assertIn("Missing required property", outcome.message, key)


def read_uaa_token(status: int, headers: Any, body: bytes, now: Any = None) -> Any:
    """The 2.41 ``/uaa/oauth/token`` answers as plain JSON reads."""
    data = json.loads(body)
    return (interpret_json_read(200, JSON, json.dumps(data["password_grant"]).encode()),
            interpret_json_read(400, JSON, json.dumps(data["refresh_grant"]).encode()))


def check_uaa_token(test: SynchronousTestCase, result: Any) -> None:
    """Read as JSON; the gateway authenticates with Basic or PAT only, so nothing depends on these tokens."""
    granted, refused = result
    test.assertEqual((granted.kind, granted.body["expires_in"]), (K.DELIVERED, 43199))
    test.assertEqual(refused.kind, K.REJECTED)
    test.assertTrue(BasicAuth("admin", "district").header_value().startswith(b"Basic "))


def read_pat_v2(status: int, headers: Any, body: bytes, now: Any = None) -> Any:
    """The ``d2p_`` token shape of the docs, as the gateway's PAT auth sends it."""
    data = json.loads(body)
    return ApiTokenAuth(data["example_token_shape_from_docs/pat-helper.md"]).header_value()


def check_pat_v2(test: SynchronousTestCase, header: bytes) -> None:
    """``Authorization: ApiToken d2p_…``: any prefix is sent unchanged, never validated client-side."""
    test.assertEqual(header, b"ApiToken d2p_UxW7txWKqLDIbVxf6b0oiVQo2oQ6W7Uth6Ez53To7XhB36MiWd")


def read_login_schema(status: int, headers: Any, body: bytes, now: Any = None) -> Any:
    """``POST /api/auth/login`` (2.43.2): a ``loginStatus`` other than SUCCESS is a JSON 200 that is not data."""
    data = json.loads(body)
    return {status_: interpret_json_read(200, JSON, json.dumps({"loginStatus": status_}).encode())
            for status_ in data["LoginResponseStatus"]}


def check_login_schema(test: SynchronousTestCase, outcomes: dict[str, Any]) -> None:
    """The gateway never logs in through the login app (Basic/PAT on every request); the answers parse as JSON."""
    test.assertIn("SUCCESS", outcomes)
    test.assertEqual(len(outcomes), 9)
    for key, outcome in outcomes.items():
        test.assertEqual(outcome.kind, K.DELIVERED, key)


# ------------------------------------------------------------------------------------- openapi
def read_error_codes(status: int, headers: Any, body: bytes, now: Any = None) -> Any:
    """The 2.43.2 ErrorCode enum."""
    return set(json.loads(body)["ErrorCode"]["enum"])


def check_error_codes(test: SynchronousTestCase, enum: set[str]) -> None:
    """Every 2.43 code the gateway names at ingest, classifies, or the simulator answers exists in 2.43.2; and
    none of the 2.43 codes is one 2.43 removed (E7600-E7645 except E7605/E7611/E7617/E7622)."""
    test.assertEqual(len(enum), 544)
    ours = {new for _, new in PREVALIDATION_CODES.values()} | set(SIM_243_CODES.values())
    ours |= set(CHUNK_ABORT_CODES) | {c for c in UNTIMELY_CODES if c.startswith("E8")}
    test.assertEqual(ours - enum, set())
    old = {old for old, _ in PREVALIDATION_CODES.values() if old}
    test.assertTrue(old - enum, "the <=2.42 codes are the ones 2.43 removed")
    test.assertEqual({c for c in ours if c.startswith("E76")}, {"E7611", "E7617"})


def read_import_schemas(status: int, headers: Any, body: bytes, now: Any = None) -> Any:
    """The 2.43.2 ImportSummary / ImportConflict / ImportCount properties, and the simulator's 2.43 answers."""
    from tests.sim.support import DE_OPD, DE_WEIGHT, FAC_NR, StubClient
    schemas = json.loads(body)
    mixed = {"dataValues": [{"dataElement": DE_OPD, "period": "202401", "orgUnit": FAC_NR, "value": "7"},
                            {"dataElement": DE_WEIGHT, "period": "202401", "orgUnit": FAC_NR, "value": "x"}]}
    answer = StubClient("2.43.2").post("/api/dataValueSets", mixed)[1]
    return schemas, answer, interpret_data_value_set_response(200, JSON, json.dumps(answer).encode())


def check_import_schemas(test: SynchronousTestCase, result: Any) -> None:
    """The simulator's 2.43 summary uses only properties of the 2.43.2 schemas; the gateway reads it as PARTIAL
    with the row from ``rejectedIndexes``; ``atomic`` is an ImportOptions flag of 2.43 (not sent)."""
    schemas, answer, outcome = result
    summary = answer["response"]
    test.assertLessEqual(set(summary), set(schemas["ImportSummary"]["properties"]))
    test.assertEqual(set(summary["importCount"]), set(schemas["ImportCount"]["required"]))
    for conflict in summary["conflicts"]:
        test.assertLessEqual(set(conflict), set(schemas["ImportConflict"]["properties"]))
    test.assertIn("atomic", schemas["ImportOptions"]["properties"])
    test.assertEqual((outcome.kind, outcome.rejected_indexes), (K.PARTIAL, (1,)))


def read_job_configuration(status: int, headers: Any, body: bytes, now: Any = None) -> Any:
    """Each 2.43.2 JobStatus as ``lastExecutedStatus`` through the 2.44 fallback reader."""
    statuses = json.loads(body)["_enums_via_dhis2w_generated_enums_v43"]["JobStatus"]
    return {s: interpret_job_configuration(200, JSON, json.dumps({"jobStatus": "DISABLED",
                                                                  "lastExecutedStatus": s}).encode(),
                                           job=JobRef("j1", "TRACKER_IMPORT_JOB")) for s in statuses}


def check_job_configuration(test: SynchronousTestCase, outcomes: dict[str, Any]) -> None:
    """FAILED/STOPPED end the attempt (retry, post again); COMPLETED means read the report; the rest wait."""
    test.assertEqual({s for s, o in outcomes.items() if o.kind is K.RETRY}, {"FAILED", "STOPPED"})
    test.assertEqual(outcomes["COMPLETED"].reason, "job_completed")
    for name in ("RUNNING", "SCHEDULED", "NOT_STARTED", "DISABLED"):
        test.assertEqual((outcomes[name].kind, outcomes[name].reason), (K.PENDING, "job_running"), name)


def read_tracker_job_paths(status: int, headers: Any, body: bytes, now: Any = None) -> Any:
    """``GET /api/tracker/jobs/{uid}/report`` answers 200, 404 and 409 (WebResponse) on 2.43.2."""
    paths = json.loads(body)
    codes = sorted(paths["/api/tracker/jobs/{uid}/report"]["get"]["responses"])
    web_response = json.dumps({"httpStatus": "Conflict", "httpStatusCode": 409, "status": "ERROR",
                               "message": "Job report failed"}).encode()
    return codes, {409: interpret_tracker_job_report(409, JSON, web_response, job_id="j1"),
                   404: interpret_tracker_job_report(404, JSON, b'{"message":"not ready"}', job_id="j1")}


def check_tracker_job_paths(test: SynchronousTestCase, result: Any) -> None:
    """404 is "not ready yet" (poll again); 409 is the job's own refusal, final."""
    codes, outcomes = result
    test.assertEqual(codes, ["200", "404", "409"])
    test.assertEqual((outcomes[404].kind, outcomes[404].reason), (K.PENDING, "job_report_not_ready"))
    test.assertEqual(outcomes[409].kind, K.REJECTED)


# ------------------------------------------------------------------------------------- tracker
def read_tracker_models(status: int, headers: Any, body: bytes, now: Any = None) -> Any:
    """A report shaped exactly by the generated models' field lists, with one error and one warning."""
    models = json.loads(body)
    error = {k: ("E1000" if k == "errorCode" else [] if k == "args" else "ENROLLMENT" if k == "trackerType"
                 else "x") for k in models["TrackerImportError"]}
    warning = {k: ("E1000" if k == "warningCode" else "x") for k in models["Warning"]}
    report = {"status": "ERROR", "validationReport": {"errorReports": [error], "warningReports": [warning]},
              "stats": {k: 0 for k in models["TrackerStats"]}, "bundleReport": {"typeReportMap": {}},
              "message": ""}
    test_keys = set(models["TrackerImportReport"])
    return test_keys, set(report), interpret_tracker_response(409, JSON, json.dumps(report).encode())


def check_tracker_models(test: SynchronousTestCase, result: Any) -> None:
    """The report of the 2.41-2.44 models is read: REJECTED with the error code and its tracker type."""
    model_keys, built_keys, outcome = result
    test.assertEqual(model_keys, built_keys)
    test.assertEqual(outcome.kind, K.REJECTED)
    test.assertEqual([(e["code"], e["trackerType"]) for e in outcome.error_reports], [("E1000", "ENROLLMENT")])


def read_program_required(status: int, headers: Any, body: bytes, now: Any = None) -> Any:
    """Reads without ``program`` on 2.43/2.44: Tomcat HTML 400 (events), JSON 400 E1003 (enrollments)."""
    data = json.loads(body)
    html = (b"<!doctype html><html><body><p><b>Message</b> Required parameter &#39;program&#39; is not present."
            b"</p></body></html>")
    return (interpret_json_read(400, {"Content-Type": "text/html;charset=utf-8"}, html),
            interpret_json_read(400, JSON, json.dumps(data["enrollments_no_program"]).encode()),
            interpret_json_read(400, JSON, json.dumps(data["trackedEntities_no_scope_2.44"]).encode()))


def check_program_required(test: SynchronousTestCase, result: Any) -> None:
    """A refused read is a failed read (never data); HTML is recognised by Content-Type, not parsed."""
    for outcome in result:
        test.assertEqual((outcome.kind, outcome.http_status), (K.REJECTED, 400))
    test.assertNotIsInstance(result[0].body, dict)


def read_e1302(status: int, headers: Any, body: bytes, now: Any = None) -> Any:
    """The verbatim E1302 error report inside a 409 report."""
    return interpret_tracker_response(409, JSON, _report([dict(json.loads(body)["errorReport"],
                                                               trackerType="EVENT", uid="Ev1aaaaaaaa")]))


def check_e1302(test: SynchronousTestCase, outcome: Any) -> None:
    """Keyed on the code; the value type (not the data element) is what args[0] names."""
    test.assertEqual(outcome.kind, K.REJECTED)
    test.assertEqual([(e["code"], e["args"][0]) for e in outcome.error_reports], [("E1302", "COORDINATE")])


def read_e1079(status: int, headers: Any, body: bytes, now: Any = None) -> Any:
    """Each wording of E1079 inside a 409 report."""
    variants = json.loads(body)["variants"]
    return {build: interpret_tracker_response(409, JSON, _report([
        {"message": text, "errorCode": "E1079", "trackerType": "EVENT", "uid": "Ev1aaaaaaaa", "args": []}]))
        for build, text in variants.items()}


def check_e1079(test: SynchronousTestCase, outcomes: dict[str, Any]) -> None:
    """Three wordings, one code: every variant is REJECTED with E1079."""
    test.assertEqual(len(outcomes), 3)
    for build, outcome in outcomes.items():
        test.assertEqual((outcome.kind, [e["code"] for e in outcome.error_reports]), (K.REJECTED, ["E1079"]), build)
