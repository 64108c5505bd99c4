"""The example plugin kind ``event``: HTTP ingest → queue → DHIS2 simulator, and its input checks."""
from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import treq
from jsonschema import Draft202012Validator
from twisted.internet import defer, reactor
from twisted.internet.task import Clock

from dhis2gw.api.routing import Router
from dhis2gw.api.site import GatewaySite
from dhis2gw.api.submissions import IngestApi
from dhis2gw.api.table import mount_ingest
from dhis2gw.interfaces import IngestRequest, KindError
from dhis2gw.wiring.plugins import load_plugins
from tests.plugins.support import SHIPPED, create_user, isolate_plugin_path, make_config, make_context
from tests.support.delivery import DeliveryRig
from tests.support.fake_auth import StaticAuthenticator

PR_MAL, PS_MAL = "vmOQjAdnOpO", "bsyk5Moo0gj"   # event program without registration (sim country.yml)
DE_RDT, DE_DAYS = "wS7PxX89ein", "vI5X6JMify6"  # BOOLEAN, INTEGER_ZERO_OR_POSITIVE
FACILITY = "ty5AJ6ZU5f7"

EVENT_BODY = {"program": PR_MAL, "programStage": PS_MAL, "orgUnit": FACILITY, "occurredAt": "2025-06-01",
              "dataValues": {DE_RDT: True, DE_DAYS: 3}}


class ExampleKindDeliveryTests(DeliveryRig):
    """A submission of the example kind travels the whole path into the simulator."""

    async def rig_setup(self) -> None:
        await super().rig_setup()
        isolate_plugin_path(self)
        self.config = make_config(env={"dhis2_base_url": self.server.base_url, "dhis2_user": "admin",
                                       "dhis2_password": "district"})
        context = make_context(reactor, config=self.config, role="all", db=self.db, submissions=self.store,
                               queue=self.queue)
        load_plugins(context, self.kinds, str(SHIPPED))  # the dispatcher delivers every kind of self.kinds
        self.event_kind = self.kinds["event"]

    async def serve_ingest(self) -> str:
        router = Router(StaticAuthenticator())
        mount_ingest(router, IngestApi(self.kinds, self.store, self.queue, self.config.destinations(),
                                       wake=self.dispatcher.wake))
        port = reactor.listenTCP(0, GatewaySite(router.resource(), max_body_bytes=1 << 20), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return f"http://127.0.0.1:{port.getHost().port}"

    async def test_event_submitted_over_http_reaches_the_simulator(self) -> None:
        """POST /api/v2/submissions/event → 202 → delivered; the simulator stored that event with its values."""
        self.make_dispatcher()
        base = await self.serve_ingest()
        user_id = await create_user(self.db, "lab-system")
        response = await treq.post(base + "/api/v2/submissions/event", json=EVENT_BODY, persistent=False,
                                   headers={"Authorization": [f"Test submitter {user_id}"]})
        answer = await response.json()
        self.assertEqual(response.code, 202, answer)
        event_uid = answer["event"]
        self.assertEqual(answer["payload"]["events"][0]["event"], event_uid)
        statuses = await self.wait_final([answer["submission_id"]])
        self.assertEqual(statuses[answer["submission_id"]], "delivered")
        stored = self.sim.store.events[event_uid]
        self.assertEqual((stored["program"], stored["programStage"], stored["orgUnit"]), (PR_MAL, PS_MAL, FACILITY))
        values = {dv["dataElement"]: dv["value"] for dv in stored["dataValues"]}
        self.assertEqual(values, {DE_RDT: "true", DE_DAYS: "3"})
        row = await self.store.get(answer["submission_id"])
        self.assertEqual((row["kind"], row["value_count"], row["submitter_id"]), ("event", 2, user_id))
        tracker_posts = [r for r in self.sim.store.requests if r.method == "POST" and r.path.endswith("/tracker")]
        self.assertEqual(len(tracker_posts), 1)

    async def test_unknown_data_element_is_rejected_by_dhis2(self) -> None:
        """A data element not in the program stage ends 'rejected' with DHIS2's E1305 report kept."""
        self.make_dispatcher()
        body = dict(EVENT_BODY, dataValues={"Re46C6Apebu": 4})
        prepared = await self.event_kind.prepare(IngestRequest(body, None, None, "main", "main"))
        from dhis2gw.dhis2.uids import generate_uid
        from dhis2gw.storage.submissions import NewSubmission

        created = await self.store.create(NewSubmission(
            uid=generate_uid(), kind="event", destination="main", submitter_id=None, endpoint="/x", payload=body,
            dhis2_payload=prepared.dhis2_payload, import_params=prepared.import_params, value_count=1))
        await self.queue.enqueue("main", created.row["id"])
        statuses = await self.wait_final([created.row["id"]])
        self.assertEqual(statuses[created.row["id"]], "rejected")
        row = await self.store.get(created.row["id"])
        self.assertIn("E1305", json.dumps(row["conflicts"]))
        self.assertEqual(self.sim.store.events, {})


class ExampleKindInputTests(DeliveryRig):
    """What the example kind accepts and refuses before anything is queued."""

    async def rig_setup(self) -> None:
        isolate_plugin_path(self)
        self.clock = Clock()
        self.clock.advance(datetime(2025, 6, 10, 12, tzinfo=UTC).timestamp())
        kinds: dict[str, Any] = {}
        load_plugins(make_context(self.clock), kinds, str(SHIPPED))
        self.event_kind = kinds["event"]

    def test_schema_refuses_unknown_fields_and_bad_uids(self) -> None:
        """The JSON schema rejects an unknown property and a malformed org unit, and allows callback_url."""
        validator = Draft202012Validator(self.event_kind.request_schema)
        self.assertEqual(list(validator.iter_errors(dict(EVENT_BODY, callback_url="https://x.example/cb"))), [])
        messages = sorted(e.message for e in validator.iter_errors(dict(EVENT_BODY, orgUnit="bad", extra=1)))
        self.assertEqual(len(messages), 2, messages)
        self.assertIn("'extra' was unexpected", " ".join(messages))

    async def test_prepare_fixes_the_event_uid_and_refuses_non_uid_keys(self) -> None:
        """prepare stores a fixed event UID (idempotent retries) and raises KindError 400 for non-UID keys."""
        prepared = await self.event_kind.prepare(IngestRequest(dict(EVENT_BODY, event="AbCdEfGhIj1"), None, None,
                                                               "main", "main"))
        event: dict[str, Any] = prepared.dhis2_payload["events"][0]
        self.assertEqual(event["event"], "AbCdEfGhIj1")
        self.assertEqual(event["status"], "COMPLETED")
        self.assertEqual(prepared.import_params, {"importStrategy": "CREATE_AND_UPDATE", "atomicMode": "ALL"})
        with self.assertRaises(KindError) as caught:
            await self.event_kind.prepare(IngestRequest(dict(EVENT_BODY, dataValues={"OPD": 1}), None, None,
                                                        "main", "main"))
        self.assertEqual((caught.exception.status, caught.exception.details["errors"][0]["field"]),
                         (400, "dataValues/OPD"))

    async def test_prepare_refuses_dates_that_do_not_exist_or_lie_ahead(self) -> None:
        """"Today" is the context's clock: tomorrow is accepted (time zones east of UTC), the day after is
        a 422; 2025-02-30 is a 400."""
        tomorrow = await self.event_kind.prepare(IngestRequest(dict(EVENT_BODY, occurredAt="2025-06-11"), None,
                                                               None, "main", "main"))
        self.assertEqual(tomorrow.dhis2_payload["events"][0]["occurredAt"], "2025-06-11")
        for text, status in (("2025-06-12", 422), ("2025-06-12T08:00:00", 422), ("2025-02-30", 400)):
            with self.assertRaises(KindError) as caught:
                await self.event_kind.prepare(IngestRequest(dict(EVENT_BODY, occurredAt=text), None, None,
                                                            "main", "main"))
            self.assertEqual((caught.exception.status, caught.exception.details["errors"][0]["field"]),
                             (status, "occurredAt"), text)
        self.clock.advance(86400)
        await self.event_kind.prepare(IngestRequest(dict(EVENT_BODY, occurredAt="2025-06-12"), None, None,
                                                    "main", "main"))

    def setUp(self) -> defer.Deferred[Any]:
        return defer.Deferred.fromCoroutine(self.rig_setup())
