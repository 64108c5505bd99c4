"""DHIS2Client over real TCP against a scripted local HTTP server (127.0.0.1, port 0).

Timeouts for the header phase are driven with a `Clock`; the body-phase timeout
uses a short real timeout because the moment the client starts reading the
body is not observable from the server.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from dhis2gw.dhis2.auth import ApiTokenAuth, BasicAuth
from dhis2gw.dhis2.client import USER_AGENT, DHIS2Client, api_root
from dhis2gw.dhis2.metadata import DHIS2ReadError
from dhis2gw.dhis2.outcome import Outcome
from dhis2gw.dhis2.outcome import OutcomeKind as K
from tests.dhis2.fixture_files import fixture_bytes
from tests.dhis2.scripted_http import ScriptedServer

PAYLOAD = {
    "dataSet": "pBOMPrpg1QX", "period": "201401", "orgUnit": "DiszpKrYNg8",
    "dataValues": [{"dataElement": "f7n9E0hX8qk", "value": "1000000", "comment": "ünïcode"}],
}
DVS = "/api/dataValueSets"


class ClientTestBase(TestCase):
    """Starts a scripted server and builds clients that are closed after each test."""

    def setUp(self) -> None:
        self.server = ScriptedServer(reactor)
        self.url = self.server.start()
        self.clock = Clock()
        self.addCleanup(self.server.stop)

    def client(self, auth: Any = None, use_clock: bool = True, **kwargs: Any) -> DHIS2Client:
        client = DHIS2Client(
            reactor, self.url + "/api/", auth or BasicAuth("admin", "district"),
            clock=self.clock if use_clock else None, **kwargs,
        )
        self.addCleanup(client.close)
        return client


class RequestShapeTests(ClientTestBase):
    """What goes over the wire."""

    async def test_basic_auth_headers_and_body(self) -> None:
        """Basic credentials, Accept, User-Agent and Content-Type are sent; the JSON body arrives intact."""
        self.server.route("POST", DVS, self.server.respond(200, fixture_bytes(
            "dataValueSets/success_200_v2.38plus__android-sdk.json")))
        outcome = await self.client().post_data_value_set(PAYLOAD, {"dataElementIdScheme": "CODE"})
        self.assertEqual(outcome.kind, K.DELIVERED)
        self.assertEqual(dict(outcome.import_count), {"imported": 0, "updated": 3, "ignored": 0, "deleted": 0})
        seen = self.server.received[0]
        self.assertEqual(seen.headers["authorization"], "Basic " + base64.b64encode(b"admin:district").decode())
        self.assertEqual(seen.headers["accept"], "application/json")
        self.assertEqual(seen.headers["user-agent"], USER_AGENT)
        self.assertTrue(USER_AGENT.startswith("dhis2gw/"))
        self.assertEqual(seen.headers["content-type"], "application/json")
        self.assertEqual(seen.json(), PAYLOAD)
        self.assertEqual(seen.args, {"dataElementIdScheme": ["CODE"]})

    async def test_api_token_header(self) -> None:
        """A personal access token is sent as 'Authorization: ApiToken <pat>'."""
        pat = "d2pat_5xVA12xyUbWNedQxy4ohH77WlxRGVvZZ1151814092"
        self.server.route("GET", "/api/system/ping", self.server.respond(200, b"pong", {"Content-Type": "text/plain"}))
        outcome = await self.client(ApiTokenAuth(pat)).ping()
        self.assertEqual((outcome.kind, outcome.body), (K.DELIVERED, "pong"))
        self.assertEqual(self.server.received[0].headers["authorization"], f"ApiToken {pat}")
        self.assertNotIn(pat, repr(ApiTokenAuth(pat)))

    async def test_tracker_defaults_and_persistent_connection(self) -> None:
        """post_tracker sends async=false&importStrategy=CREATE_AND_UPDATE; both calls share one connection."""
        self.server.route("POST", "/api/tracker", self.server.respond(200, fixture_bytes(
            "tracker/sync_200_OK_import_report_v2.41__docs.json")))
        client = self.client()
        first = await client.post_tracker({"trackedEntities": []})
        second = await client.post_tracker({"trackedEntities": []}, {"importStrategy": "UPDATE"})
        self.assertEqual((first.kind, dict(first.stats)["created"]), (K.DELIVERED, 3))
        self.assertEqual(second.kind, K.DELIVERED)
        one, two = self.server.received
        self.assertEqual(one.args, {"async": ["false"], "importStrategy": ["CREATE_AND_UPDATE"]})
        self.assertEqual(two.args["importStrategy"], ["UPDATE"])
        self.assertEqual(one.client_port, two.client_port, "the pooled connection was reused")

    def test_base_url_forms(self) -> None:
        """The base URL works with or without a trailing /api or /."""
        for given in ("https://h/dhis", "https://h/dhis/", "https://h/dhis/api", "https://h/dhis/api/ "):
            self.assertEqual(api_root(given), "https://h/dhis/api/")


class TransportFaultTests(ClientTestBase):
    """Every transport fault becomes an Outcome (none raises)."""

    async def test_read_timeout_waiting_for_headers(self) -> None:
        """No answer within read_timeout on the clock -> SUSPECT 'timeout', duration from the clock."""
        self.server.route("POST", DVS, self.server.hang())
        client = self.client(read_timeout=30)
        arrived = self.server.next_request()
        pending = Deferred.fromCoroutine(client.post_data_value_set(PAYLOAD))
        seen = await arrived
        self.assertEqual(seen.json(), PAYLOAD)
        self.clock.advance(29)
        self.assertFalse(pending.called)
        self.clock.advance(1)
        outcome: Outcome = await pending
        self.assertEqual((outcome.kind, outcome.reason, outcome.http_status), (K.SUSPECT, "timeout", None))
        self.assertEqual(outcome.duration, 30.0)
        self.assertIn("no headers from DHIS2 within 30 s", outcome.message)

    async def test_read_timeout_in_the_body(self) -> None:
        """Headers arrive but the body stalls past the read timeout -> SUSPECT 'timeout' with the status kept."""
        self.server.route("POST", DVS, self.server.slow_body(200, b'{"status":', 500))
        outcome = await self.client(use_clock=False, read_timeout=0.3).post_data_value_set(PAYLOAD)
        self.assertEqual((outcome.kind, outcome.reason, outcome.http_status), (K.SUSPECT, "timeout", 200))
        self.assertIn("no body from DHIS2", outcome.message)
        self.assertGreaterEqual(outcome.duration, 0.3)

    async def test_redirect_is_not_followed(self) -> None:
        """A 302 to the login page is reported as an auth failure and never followed."""
        login = self.url + "/dhis-web-commons/security/login.action"
        self.server.route("POST", DVS, self.server.respond(302, b"", {"Location": login}))
        self.server.route("GET", "/dhis-web-commons/security/login.action",
                          self.server.respond(200, b"<html>login</html>", {"Content-Type": "text/html"}))
        outcome = await self.client().post_data_value_set(PAYLOAD)
        self.assertEqual((outcome.kind, outcome.reason, outcome.http_status), (K.DESTINATION_FAILURE, "auth", 302))
        self.assertEqual([r.path for r in self.server.received], [DVS])

    async def test_size_cap(self) -> None:
        """A body over max_response_bytes is cut off (announced or chunked) -> RETRY 'response_too_large'."""
        big = json.dumps({"status": "OK", "pad": "x" * 5000}).encode()
        self.server.route("GET", "/api/announced", self.server.respond(200, big))
        self.server.route("GET", "/api/chunked", self.server.chunked(200, [big[:3000], big[3000:]]))
        self.server.route("GET", "/api/small", self.server.chunked(200, [b'{"ok":', b" true}"]))
        client = self.client(max_response_bytes=4096)
        for path in ("announced", "chunked"):
            outcome = await client.fetch_json(path)
            self.assertEqual((outcome.kind, outcome.reason, outcome.http_status),
                             (K.RETRY, "response_too_large", 200), path)
        small = await client.fetch_json("small")
        self.assertEqual((small.kind, small.body), (K.DELIVERED, {"ok": True}))

    async def test_connection_refused(self) -> None:
        """Nothing listening -> DESTINATION_FAILURE 'connection_refused' (no retry spent)."""
        port = reactor.listenTCP(0, self.server._site, interface="127.0.0.1")
        number = port.getHost().port
        await port.stopListening()
        client = DHIS2Client(reactor, f"http://127.0.0.1:{number}", BasicAuth("a", "b"), clock=self.clock)
        self.addCleanup(client.close)
        outcome = await client.post_data_value_set(PAYLOAD)
        self.assertEqual((outcome.kind, outcome.reason), (K.DESTINATION_FAILURE, "connection_refused"))
        self.assertTrue(outcome.counts_for_breaker and not outcome.spends_retry)

    async def test_commit_then_drop(self) -> None:
        """The server reads the payload and drops the connection: SUSPECT 'connection_lost' (may be stored)."""
        self.server.route("POST", DVS, self.server.drop())
        outcome = await self.client().post_data_value_set(PAYLOAD)
        self.assertEqual((outcome.kind, outcome.reason), (K.SUSPECT, "connection_lost"))
        self.assertEqual(self.server.received[0].json(), PAYLOAD)

    async def test_unencodable_payload_is_rejected_without_a_request(self) -> None:
        """A payload json cannot encode is a rejection and nothing is sent."""
        outcome = await self.client().post_data_value_set({"value": object()})
        self.assertEqual((outcome.kind, outcome.reason), (K.REJECTED, "payload_not_json"))
        self.assertEqual(self.server.received, [])


class EndpointTests(ClientTestBase):
    """System info, async job polling, org-unit writes and metadata reads."""

    async def test_system_info_caches_version(self) -> None:
        """system_info parses '2.40.3.1' into (2, 40, 3) and keeps the body."""
        self.server.route("GET", "/api/system/info", self.server.respond(200, fixture_bytes(
            "system/system_info_v2.40_non_superuser__constructed.json")))
        client = self.client()
        outcome = await client.system_info()
        self.assertEqual(outcome.kind, K.DELIVERED)
        self.assertEqual(client.version, (2, 40, 3))
        self.assertEqual(client.system_info_body["systemName"], "DHIS 2 Demo - Sierra Leone")

    async def test_tracker_async_job_poll(self) -> None:
        """Async tracker: job accepted, then notifications complete, then the report's outcome."""
        job = "cHh2OCTJvRw"
        self.server.route("POST", "/api/tracker", self.server.respond(200, fixture_bytes(
            "tracker/async_200_job_added_v2.41__docs.json")))
        self.server.route("GET", f"/api/tracker/jobs/{job}", self.server.respond(200, b"[]"))
        client = self.client()
        accepted = await client.post_tracker({"events": []}, {"async": "true"})
        self.assertEqual((accepted.kind, accepted.job.id), (K.ACCEPTED_ASYNC, job))
        unknown = await client.get_tracker_job(job)
        self.assertEqual((unknown.kind, unknown.reason), (K.PENDING, "job_unknown"))
        self.server.route("GET", f"/api/tracker/jobs/{job}/report", self.server.respond(404, fixture_bytes(
            "tracker/job_report_404_not_ready_v2.40-2.42__constructed.json")))
        not_ready = await client.get_tracker_job_report(job)
        self.assertEqual((not_ready.kind, not_ready.job.id), (K.PENDING, job))
        self.server.route("GET", f"/api/tracker/jobs/{job}", self.server.respond(200, fixture_bytes(
            "tracker/job_notifications_completed_v2.41__android-sdk.json")))
        self.server.route("GET", f"/api/tracker/jobs/{job}/report", self.server.respond(200, fixture_bytes(
            "tracker/job_report_ERROR_E1033__android-sdk.json")))
        done = await client.get_tracker_job(job)
        self.assertEqual((done.kind, [e["code"] for e in done.error_reports]), (K.REJECTED, ["E1033"]))
        self.assertEqual(self.server.received[-1].args, {"reportMode": ["ERRORS"]})

    async def test_data_value_task_poll(self) -> None:
        """Async aggregate: running task -> PENDING; empty summary -> PENDING; summary -> DELIVERED."""
        job = "YR1UxOUXmzT"
        tasks = f"/api/system/tasks/DATAVALUE_IMPORT/{job}"
        summary = f"/api/system/taskSummaries/DATAVALUE_IMPORT/{job}"
        running = json.dumps([{"uid": "a", "level": "INFO", "message": "Importing data...", "completed": False}])
        self.server.route("GET", tasks, self.server.respond(200, running.encode()))
        client = self.client()
        outcome = await client.get_data_value_task(job)
        self.assertEqual((outcome.kind, outcome.job.last_message), (K.PENDING, "Importing data..."))
        self.server.route("GET", tasks, self.server.respond(200, fixture_bytes(
            "system/tasks_DATAVALUE_IMPORT_id__docs.json")))
        self.server.route("GET", summary, self.server.respond(200, b""))
        self.assertEqual((await client.get_data_value_task(job)).reason, "job_summary_not_ready")
        self.server.route("GET", summary, self.server.respond(200, fixture_bytes(
            "system/taskSummaries_DATAVALUE_IMPORT_id__docs.json")))
        done = await client.get_data_value_task(job)
        self.assertEqual((done.kind, done.import_count["updated"]), (K.DELIVERED, 431))

    async def test_org_unit_writes(self) -> None:
        """Create -> ObjectReport, update -> PUT with the body, group add 204 (2.36) and 409 errors."""
        self.server.route("POST", "/api/organisationUnits", self.server.respond(201, fixture_bytes(
            "metadata/organisationUnit_post_201_ObjectReport_v2.38-2.42__constructed.json")))
        self.server.route("PUT", "/api/organisationUnits/Nq3ZeSEtdyz", self.server.respond(409, fixture_bytes(
            "metadata/organisationUnit_post_409_E4000__constructed.json")))
        self.server.route("POST", "/api/organisationUnitGroups/f25dqv3Y7Z0/organisationUnits/Nq3ZeSEtdyz",
                          self.server.respond(204, b""))
        client = self.client()
        unit = {"id": "Nq3ZeSEtdyz", "name": "New CHP", "shortName": "New CHP", "openingDate": "2020-01-01"}
        created = await client.create_org_unit(unit)
        self.assertEqual(created.kind, K.DELIVERED)
        updated = await client.update_org_unit("Nq3ZeSEtdyz", {"name": "x"})
        self.assertEqual((updated.kind, updated.error_reports[0]["code"]), (K.REJECTED, "E4000"))
        added = await client.add_org_unit_to_group("f25dqv3Y7Z0", "Nq3ZeSEtdyz")
        self.assertEqual((added.kind, added.http_status), (K.DELIVERED, 204))
        self.assertEqual(self.server.received[0].json(), unit)
        self.assertEqual([r.method for r in self.server.received], ["POST", "PUT", "POST"])

    async def test_organisation_units_pages(self) -> None:
        """organisation_units yields every page with fields, filters and lastUpdated, then stops."""
        page = json.loads(fixture_bytes("metadata/organisationUnits_page_fields_filtered__constructed.json"))
        pages: dict[str, bytes] = {}
        for number in (1, 2):
            body = dict(page, pager={"page": number, "pageCount": 2, "total": 4, "pageSize": 2})
            pages[str(number)] = json.dumps(body).encode()

        def handler(request: Any) -> bytes:
            request.setHeader("Content-Type", "application/json")
            return pages[request.args[b"page"][0].decode()]

        self.server.route("GET", "/api/organisationUnits", handler)
        seen = [p async for p in self.client().organisation_units(
            filters=["path:like:ImspTQPwCqd"], last_updated="2024-01-01", page_size=2)]
        self.assertEqual([[u["id"] for u in p] for p in seen], [["Rp268JB6Ne4", "DiszpKrYNg8"]] * 2)
        first = self.server.received[0].args
        self.assertEqual(first["filter"], ["path:like:ImspTQPwCqd", "lastUpdated:ge:2024-01-01"])
        self.assertEqual((first["pageSize"], first["page"]), (["2"], ["1"]))
        self.assertIn("parent[id]", first["fields"][0])
        self.assertEqual(len(self.server.received), 2)

    async def test_data_set_and_read_errors(self) -> None:
        """data_set builds the structure; a read answered 401 raises DHIS2ReadError carrying the outcome."""
        self.server.route("GET", "/api/dataSets/pBOMPrpg1QX", self.server.respond(200, fixture_bytes(
            "metadata/dataSet_with_dataSetElements_cocs__constructed.json")))
        self.server.route("GET", "/api/dataSets/locked", self.server.respond(401, fixture_bytes(
            "auth/401_bad_basic_credentials__android-sdk.json")))
        client = self.client()
        structure = await client.data_set("pBOMPrpg1QX")
        self.assertEqual(structure.elements["Ix2HsbDMLea"].category_option_combos, {"S34ULMcHMca", "wHBMVthqIX4"})
        self.assertIn("categoryCombo[id,categoryOptionCombos", self.server.received[0].args["fields"][0])
        with self.assertRaises(DHIS2ReadError) as caught:
            await client.data_set("locked")
        self.assertEqual((caught.exception.outcome.kind, caught.exception.outcome.reason),
                         (K.DESTINATION_FAILURE, "auth"))


class CancellationTests(ClientTestBase):
    """The caller's own cancellation is not swallowed into an Outcome."""

    async def test_caller_cancel_propagates(self) -> None:
        """Cancelling a pending call raises CancelledError to the caller and drops the request."""
        from twisted.internet.defer import CancelledError

        self.server.route("POST", DVS, self.server.hang())
        arrived = self.server.next_request()
        pending = Deferred.fromCoroutine(self.client().post_data_value_set(PAYLOAD))
        await arrived
        pending.cancel()
        with self.assertRaises(CancelledError):
            await pending

    def test_timeout_during_connect_is_a_connect_timeout(self) -> None:
        """A read timeout that cancels a connection attempt is reported as connect_timeout (nothing sent)."""
        from twisted.internet.error import ConnectingCancelledError
        from twisted.python.failure import Failure

        from dhis2gw.dhis2.failures import interpret_failure

        on_timeout = self.client()._timeout_for("headers")
        converted = on_timeout(Failure(ConnectingCancelledError(None)), 5)
        self.assertEqual(interpret_failure(converted).reason, "connect_timeout")
        other = on_timeout(Failure(Exception("cancelled while waiting")), 5)
        self.assertEqual(interpret_failure(other).reason, "timeout")
