"""The outcome rules of DESIGN.md section 4 for answers the fixtures do not cover."""

from __future__ import annotations

import json

from twisted.internet import defer, error
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import RequestTransmissionFailed, ResponseFailed, ResponseNeverReceived

from dhis2gw.dhis2.failures import ConnectTimeout, ReadTimeout, ResponseTooLarge, interpret_failure
from dhis2gw.dhis2.http_rules import looks_transient, parse_retry_after
from dhis2gw.dhis2.interpret import interpret_data_value_set_response, interpret_metadata_response
from dhis2gw.dhis2.outcome import OutcomeKind as K
from dhis2gw.dhis2.tracker_reports import interpret_tracker_response

LOGIN_HTML = b"<html><body><form action='login'>user <input name='password'></form></body></html>"


def summary(status: str, imported: int = 0, updated: int = 0, description: str = "", wrapped: bool = True,
            conflicts: list | None = None) -> bytes:
    inner = {
        "responseType": "ImportSummary", "status": status, "description": description,
        "importCount": {"imported": imported, "updated": updated, "ignored": 0, "deleted": 0},
        "conflicts": conflicts or [],
    }
    body = {"httpStatus": "Conflict", "httpStatusCode": 409, "status": status, "response": inner} if wrapped else inner
    return json.dumps(body).encode()


def tracker_report(status: str, codes: list[str], created: int = 0, ignored: int = 0) -> bytes:
    return json.dumps({
        "status": status,
        "validationReport": {"errorReports": [
            {"errorCode": c, "message": f"{c} text", "trackerType": "ENROLLMENT", "uid": "XJPm2lZzxtq"} for c in codes
        ]},
        "stats": {"created": created, "updated": 0, "deleted": 0, "ignored": ignored, "total": created + ignored},
    }).encode()


class HttpStatusRuleTests(SynchronousTestCase):
    """Statuses that decide without reading an import report."""

    def test_redirect_to_login_is_auth(self) -> None:
        """A 302 to DHIS2's login page (<=2.40 and 2.41+) is a destination-level auth failure."""
        for location in ("https://d/dhis-web-commons/security/login.action", "https://d/dhis-web-login/"):
            outcome = interpret_data_value_set_response(302, {"Location": location}, b"")
            self.assertEqual((outcome.kind, outcome.reason), (K.DESTINATION_FAILURE, "auth"))
            self.assertIn(location, outcome.message)
            self.assertTrue(outcome.is_auth_failure and outcome.counts_for_breaker and not outcome.spends_retry)

    def test_other_redirect_is_destination_failure(self) -> None:
        """A redirect elsewhere (http->https, moved server) is a configuration problem, not this payload's."""
        outcome = interpret_tracker_response(301, {"location": "https://new/api/tracker"}, b"")
        self.assertEqual((outcome.kind, outcome.reason), (K.DESTINATION_FAILURE, "redirect"))

    def test_429_seconds_and_http_date(self) -> None:
        """Retry-After is honoured as delta-seconds and as an HTTP date relative to the clock."""
        seconds = interpret_data_value_set_response(429, {"Retry-After": "30"}, b"slow down")
        self.assertEqual((seconds.kind, seconds.reason, seconds.retry_after), (K.RATE_LIMITED, "rate_limited", 30.0))
        now = 1_700_000_000.0  # 2023-11-14T22:13:20Z
        dated = interpret_data_value_set_response(
            429, {"Retry-After": "Tue, 14 Nov 2023 22:15:20 GMT"}, b"", now=now)
        self.assertEqual(dated.retry_after, 120.0)
        self.assertIsNone(interpret_data_value_set_response(429, {}, b"").retry_after)
        self.assertEqual(parse_retry_after("Tue, 14 Nov 2023 22:00:00 GMT", now), 0.0)

    def test_5xx_split_on_dhis2_body(self) -> None:
        """500 with a DHIS2 JSON body spends a retry; 500 with an HTML page is the destination's fault."""
        dhis2 = interpret_data_value_set_response(500, {}, b'{"status":"ERROR","message":"boom"}')
        self.assertEqual((dhis2.kind, dhis2.reason), (K.SUSPECT, "server_error"))
        tomcat = interpret_data_value_set_response(500, {}, b"<html>HTTP Status 500</html>")
        self.assertEqual((tomcat.kind, tomcat.reason), (K.DESTINATION_FAILURE, "http_500"))

    def test_plain_4xx_are_rejections(self) -> None:
        """413 and 415 reject the payload permanently, HTML or JSON; so does a 404 from DHIS2 itself."""
        for status in (413, 415):
            outcome = interpret_data_value_set_response(status, {}, b"<html>nope</html>")
            self.assertEqual((outcome.kind, outcome.reason), (K.REJECTED, f"http_{status}"))
        dhis2 = interpret_data_value_set_response(
            404, {}, b'{"httpStatus":"Not Found","httpStatusCode":404,"status":"ERROR","message":"DataSet not found"}')
        self.assertEqual((dhis2.kind, dhis2.reason), (K.REJECTED, "http_404"))

    def test_html_404_is_the_destination(self) -> None:
        """An HTML or empty 404 is Tomcat's or a proxy's (wrong base URL): no payload is to blame."""
        for body in (b"<html><body><h1>HTTP Status 404 - Not Found</h1></body></html>", b""):
            outcome = interpret_data_value_set_response(404, {}, body)
            self.assertEqual((outcome.kind, outcome.reason), (K.DESTINATION_FAILURE, "not_found"))
            self.assertIn("dhis2_base_url", outcome.message)

    def test_non_json_200(self) -> None:
        """A 200 that is not JSON did not come from the API: destination failure (auth for a login form)."""
        portal = interpret_data_value_set_response(200, {}, b"<html><h1>Maintenance</h1></html>")
        self.assertEqual((portal.kind, portal.reason), (K.DESTINATION_FAILURE, "not_json"))
        self.assertIn("Maintenance", portal.body)
        login = interpret_tracker_response(200, {}, LOGIN_HTML)
        self.assertEqual((login.kind, login.reason), (K.DESTINATION_FAILURE, "auth"))
        empty = interpret_data_value_set_response(200, {}, b"")
        self.assertEqual((empty.kind, empty.reason), (K.DESTINATION_FAILURE, "not_json"))


class AggregateBodyRuleTests(SynchronousTestCase):
    """The body status wins over the HTTP code."""

    def test_plain_200_error_on_237_is_rejected(self) -> None:
        """2.36/2.37 answer ERROR with HTTP 200 and a bare summary: still a rejection."""
        body = summary("ERROR", description="Import process was aborted", wrapped=False, conflicts=[
            {"object": "pBOMPrpg1QX", "value": "Data set not found or not accessible: `pBOMPrpg1QX`",
             "errorCode": "E7600"}])
        outcome = interpret_data_value_set_response(200, {}, body)
        self.assertEqual((outcome.kind, outcome.dhis2_status), (K.REJECTED, "ERROR"))
        self.assertIn("Data set not found", outcome.message)

    def test_error_with_values_stored_is_partial(self) -> None:
        """ERROR with imported/updated > 0 means some values are in DHIS2: partial."""
        outcome = interpret_data_value_set_response(409, {}, summary("ERROR", imported=2))
        self.assertEqual(outcome.kind, K.PARTIAL)

    def test_import_failed_parse_vs_database(self) -> None:
        """'The import process failed': a parse error is permanent, a database error is retried."""
        parse = summary("ERROR", description="The import process failed: Unexpected character ('x')")
        self.assertEqual(interpret_data_value_set_response(409, {}, parse).kind, K.REJECTED)
        db = summary("ERROR", description="The import process failed: could not execute statement; "
                                          "SQL [n/a]; deadlock detected")
        outcome = interpret_data_value_set_response(409, {}, db)
        self.assertEqual((outcome.kind, outcome.reason), (K.RETRY, "import_failed_transient"))
        self.assertFalse(looks_transient("No content to map due to end-of-input"))

    def test_bare_409_webmessage(self) -> None:
        """A 409 without a summary: the 2.41 concurrent-upsert PersistenceException is retried, others rejected."""
        race = json.dumps({"httpStatus": "Conflict", "httpStatusCode": 409, "status": "ERROR",
                           "message": "org.hibernate.exception.ConstraintViolationException: duplicate key"})
        self.assertEqual(interpret_data_value_set_response(409, {}, race.encode()).kind, K.RETRY)
        other = json.dumps({"httpStatus": "Conflict", "httpStatusCode": 409, "status": "ERROR",
                            "message": "Ad-hoc job creation failed"})
        self.assertEqual(interpret_data_value_set_response(409, {}, other.encode()).kind, K.REJECTED)


class TrackerBodyRuleTests(SynchronousTestCase):
    """Tracker ImportReport decisions documented in tracker_reports."""

    def test_already_exists_counts_as_delivered(self) -> None:
        """E1002/E1080 on a re-send mean an earlier attempt stored the objects."""
        outcome = interpret_tracker_response(409, {}, tracker_report("ERROR", ["E1002", "E1080"], ignored=2))
        self.assertEqual((outcome.kind, outcome.reason), (K.DELIVERED, "already_exists"))

    def test_missing_parent_is_retried(self) -> None:
        """E1063 (tracked entity not there yet) may resolve once the parent's submission lands."""
        outcome = interpret_tracker_response(409, {}, tracker_report("ERROR", ["E1063"], ignored=1))
        self.assertEqual((outcome.kind, outcome.reason), (K.RETRY, "missing_parent"))

    def test_error_with_objects_created_is_partial(self) -> None:
        """atomicMode=OBJECT: some objects created despite ERROR -> partial."""
        outcome = interpret_tracker_response(409, {}, tracker_report("ERROR", ["E1041"], created=1, ignored=1))
        self.assertEqual(outcome.kind, K.PARTIAL)

    def test_warning_with_ignored_objects_is_partial(self) -> None:
        """WARNING where objects were ignored is partial; without ignored it is delivered."""
        outcome = interpret_tracker_response(200, {}, tracker_report("WARNING", [], created=1, ignored=1))
        self.assertEqual((outcome.kind, outcome.reason), (K.PARTIAL, "ignored"))


class MetadataRuleTests(SynchronousTestCase):
    """Org-unit writes and group membership on old and new versions."""

    def test_204_group_add_on_236(self) -> None:
        """2.36-2.37 answer a collection add with 204 No Content: delivered."""
        outcome = interpret_metadata_response(204, {}, b"")
        self.assertEqual((outcome.kind, outcome.http_status), (K.DELIVERED, 204))

    def test_import_report_with_errors(self) -> None:
        """/api/metadata ImportReport with errors and nothing stored is rejected, errors listed."""
        body = {"status": "ERROR", "stats": {"created": 0, "updated": 0, "deleted": 0, "ignored": 1, "total": 1},
                "typeReports": [{"klass": "OrganisationUnit", "objectReports": [{"uid": "Nq3ZeSEtdyz", "errorReports": [
                    {"errorCode": "E5003", "message": "Property `code` already exists", "errorProperty": "code"}]}]}]}
        outcome = interpret_metadata_response(409, {}, json.dumps(body).encode())
        self.assertEqual(outcome.kind, K.REJECTED)
        self.assertEqual([(e["code"], e["uid"], e["property"]) for e in outcome.error_reports],
                         [("E5003", "Nq3ZeSEtdyz", "code")])


class TransportFailureTests(SynchronousTestCase):
    """interpret_failure: which transport errors spend a retry and which pause the destination."""

    def check(self, exc: BaseException, kind: K, reason: str) -> None:
        for given in (exc, Failure(exc)):
            outcome = interpret_failure(given)
            self.assertEqual((outcome.kind, outcome.reason), (kind, reason), repr(exc))
            self.assertIsNone(outcome.http_status)

    def test_cannot_reach_is_destination_failure(self) -> None:
        """Refused, DNS, TLS, connect timeout, broken while sending: nothing committed, no retry spent."""
        self.check(error.ConnectionRefusedError(), K.DESTINATION_FAILURE, "connection_refused")
        self.check(error.DNSLookupError("nope.invalid"), K.DESTINATION_FAILURE, "dns")
        self.check(ConnectTimeout(), K.DESTINATION_FAILURE, "connect_timeout")
        self.check(error.TimeoutError(), K.DESTINATION_FAILURE, "connect_timeout")
        self.check(error.NoRouteError(), K.DESTINATION_FAILURE, "connect_error")
        from OpenSSL.SSL import Error as TLSError
        self.check(ResponseNeverReceived([Failure(TLSError("certificate verify failed"))]),
                   K.DESTINATION_FAILURE, "tls")
        self.check(RequestTransmissionFailed([Failure(error.ConnectionLost())]),
                   K.DESTINATION_FAILURE, "connection_reset")

    def test_lost_answer_spends_a_retry(self) -> None:
        """Sent but unanswered (timeout, dropped connection): DHIS2 may have committed -> SUSPECT."""
        self.check(ReadTimeout("headers", 5), K.SUSPECT, "timeout")
        self.check(defer.TimeoutError(), K.SUSPECT, "timeout")
        self.check(defer.CancelledError(), K.SUSPECT, "timeout")
        self.check(ResponseNeverReceived([Failure(error.ConnectionDone())]), K.SUSPECT, "connection_lost")
        self.check(ResponseFailed([Failure(error.ConnectionLost())]), K.SUSPECT, "connection_lost")
        self.check(error.ConnectionLost(), K.SUSPECT, "connection_lost")
        self.check(ResponseTooLarge(10), K.RETRY, "response_too_large")
        self.check(RuntimeError("bug"), K.SUSPECT, "unexpected_error")

    def test_http_status_kept_when_body_failed(self) -> None:
        """A body that broke off after the headers keeps the status for the event trail."""
        outcome = interpret_failure(Failure(ReadTimeout("body", 5)), http_status=200)
        self.assertEqual((outcome.kind, outcome.http_status), (K.SUSPECT, 200))
        self.assertIn("no body from DHIS2 within 5 s", outcome.message)
