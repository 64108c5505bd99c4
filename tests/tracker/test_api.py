"""``POST /api/v2/tracker`` over HTTP: a Router with the tracker area and the shared ingest path.

The area runs on a real port with the StaticAuthenticator (``Authorization: Test <role> <id>``),
the delivery engine behind it delivers to the simulator, and ``GET /api/v2/submissions/{id}``
shows the outcome.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import treq
from twisted.internet import reactor

from dhis2gw.api.routing import Router
from dhis2gw.api.site import GatewaySite
from dhis2gw.api.submissions import IngestApi
from dhis2gw.api.table import mount_ingest
from tests.support.fake_auth import StaticAuthenticator
from tests.tracker.rig import FAC_CR, TrackerRig, flat_payload, nested_payload, person


@dataclass
class _Destination:
    instance_name: str


class TrackerApiTests(TrackerRig):
    """The HTTP contract of the tracker area."""

    async def rig_setup(self) -> None:
        await super().rig_setup()
        for user_id, role in ((1, "submitter"), (2, "submitter"), (3, "operator")):
            await self.db.execute(
                "t.user", "INSERT INTO users (id, uid, username, role, source_name, password_hash)"
                " VALUES (%s, %s, %s, %s, %s, 'x')",
                (user_id, f"User{user_id:07d}", f"user{user_id}", role, "emr" if user_id == 1 else None))
        self.dispatcher = self.make_dispatcher()
        ingest = IngestApi(self.kinds, self.store, self.queue, {"main": _Destination("main")},
                           wake=self.dispatcher.wake)
        router = Router(StaticAuthenticator())
        mount_ingest(router, ingest)
        self.port = reactor.listenTCP(0, GatewaySite(router.resource(), max_body_bytes=1024 * 1024),
                                      interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port.getHost().port}/api/v2{path}"

    async def call(self, method: str, path: str, body: Any = None, role: str = "submitter", user: int = 1,
                   headers: dict[str, str] | None = None) -> tuple[int, Any]:
        source = " emr" if user == 1 else ""  # StaticAuthenticator: 4th word = the principal's source_name
        all_headers = {"Authorization": f"Test {role} {user}{source}", "Content-Type": "application/json",
                       **(headers or {})}
        data = json.dumps(body).encode() if body is not None else None
        response = await treq.request(method, self.url(path), data=data, headers=all_headers, persistent=False)
        return response.code, await response.json()

    async def test_accepts_and_returns_uids(self) -> None:
        """202 with reference → UID per collection; the simulator stored exactly those UIDs."""
        code, body = await self.call("POST", "/tracker", flat_payload("H"))
        self.assertEqual(code, 202, body)
        self.assertEqual(body["value_count"], 7)
        uids = body["uids"]
        self.assertEqual(set(uids["trackedEntities"]), {"H-M", "H-C"})
        self.assertEqual(body["payload"]["enrollments"][0]["trackedEntity"], uids["trackedEntities"]["H-C"])
        sid = body["submission_id"]
        self.assertEqual((await self.wait_final([sid]))[sid], "delivered")
        self.assertEqual(set(self.sim.store.tracked_entities), set(uids["trackedEntities"].values()))
        self.assertEqual(set(self.sim.store.events), set(uids["events"].values()))
        self.assertEqual(set(self.sim.store.relationships), set(uids["relationships"].values()))
        code, shown = await self.call("GET", f"/submissions/{sid}")
        self.assertEqual(code, 200)
        self.assertEqual(shown["kind"], "tracker")
        self.assertEqual(shown["endpoint"], "/api/v2/tracker")
        self.assertEqual(shown["import_count"]["created"], 7)
        rows = await self.db.fetch("t", "SELECT source_system, source_id FROM uid_map ORDER BY source_id")
        self.assertIn(("emr", "H-M"), [(r["source_system"], r["source_id"]) for r in rows])

    async def test_uid_map_is_per_source(self) -> None:
        """Without a source_name the username is the namespace: another source's P-1 is another person."""
        _, first = await self.call("POST", "/tracker", {"trackedEntities": [person("A", reference="P-1")]}, user=1)
        _, second = await self.call("POST", "/tracker", {"trackedEntities": [person("B", reference="P-1")]}, user=2)
        _, again = await self.call("POST", "/tracker", {"trackedEntities": [person("B2", reference="P-1")]}, user=2)
        a, b = first["uids"]["trackedEntities"]["P-1"], second["uids"]["trackedEntities"]["P-1"]
        self.assertNotEqual(a, b)
        self.assertEqual(again["uids"]["trackedEntities"]["P-1"], b)
        rows = await self.db.fetch("t", "SELECT source_system FROM uid_map ORDER BY source_system")
        self.assertEqual([r["source_system"] for r in rows], ["emr", "user2"])

    async def test_validation_errors_shown_by_status_endpoint(self) -> None:
        """A DHIS2 E1041 rejection shows in GET /submissions/{id} with code, message, type and uid."""
        payload = nested_payload("Halima", "P-9")
        payload["trackedEntities"][0]["enrollments"][0]["orgUnit"] = FAC_CR
        code, body = await self.call("POST", "/tracker", payload)
        self.assertEqual(code, 202, body)
        sid = body["submission_id"]
        await self.wait_final([sid])
        code, shown = await self.call("GET", f"/submissions/{sid}")
        self.assertEqual(shown["status"], "rejected")
        e1041 = [c for c in shown["conflicts"] if c["code"] == "E1041"]
        self.assertEqual(len(e1041), 1)
        self.assertEqual(e1041[0]["trackerType"], "ENROLLMENT")
        self.assertEqual(e1041[0]["uid"], body["uids"]["enrollments"]["P-9-E"])
        self.assertIn("do not match", e1041[0]["message"])
        self.assertEqual([e["event"] for e in shown["events"]], ["queued", "processing", "rejected"])

    async def test_schema_errors_are_all_listed(self) -> None:
        """A bad UID, a bad status and an unknown top-level key are reported together; nothing is queued."""
        payload = {"trackedEntityInstances": [], "trackedEntities": [
            {"trackedEntity": "not-a-uid", "enrollments": [{"status": "DONE"}]}]}
        code, body = await self.call("POST", "/tracker", payload)
        self.assertEqual(code, 400)
        fields = {e["field"] for e in body["error"]["details"]["errors"]}
        self.assertEqual(fields, {"(body)", "trackedEntities/0/trackedEntity",
                                  "trackedEntities/0/enrollments/0/status"})
        self.assertEqual(await self.statuses(), {})

    async def test_bad_import_options_are_all_listed(self) -> None:
        """Every invalid import option is named in one 400."""
        code, body = await self.call("POST", "/tracker?atomicMode=SOME&idScheme=FOO&dryRun=maybe&importStrategy=create",
                                     nested_payload())
        self.assertEqual(code, 400)
        self.assertEqual(body["error"]["code"], "invalid_import_options")
        self.assertEqual({e["field"] for e in body["error"]["details"]["errors"]},
                         {"atomicMode", "idScheme", "dryRun"})

    async def test_unresolvable_reference_is_422(self) -> None:
        """An event naming an enrollment nobody knows is refused with the field path."""
        code, body = await self.call("POST", "/tracker", {"events": [
            {"programStage": "mfldQTsPucY", "orgUnit": "ty5AJ6ZU5f7", "enrollment": "NOPE-1"}]})
        self.assertEqual(code, 422)
        self.assertEqual(body["error"]["details"]["errors"][0]["field"], "events/0/enrollment")

    async def test_dry_run_is_validate_mode(self) -> None:
        """dryRun=true is sent as importMode=VALIDATE: nothing stored, the submission delivered."""
        code, body = await self.call("POST", "/tracker?dryRun=true", nested_payload("Dry", "P-D"))
        self.assertEqual(code, 202)
        sid = body["submission_id"]
        self.assertEqual((await self.wait_final([sid]))[sid], "delivered")
        self.assertEqual(self.tracker_posts()[0].query["importMode"], ["VALIDATE"])
        self.assertEqual(self.sim.store.tracked_entities, {})

    async def test_roles(self) -> None:
        """Operators may not submit tracker data."""
        code, body = await self.call("POST", "/tracker", nested_payload(), role="operator", user=3)
        self.assertEqual(code, 403)
        self.assertEqual(body["error"]["code"], "forbidden")

    async def test_empty_payload(self) -> None:
        """A payload without objects is a 400."""
        code, body = await self.call("POST", "/tracker", {"trackedEntities": []})
        self.assertEqual(code, 400)
        self.assertEqual(body["error"]["code"], "empty_payload")

    async def test_idempotent_repeat_answers_the_stored_uids(self) -> None:
        """The same Idempotency-Key and body: 200 with the first submission's UIDs, even unreferenced ones."""
        body = {"trackedEntities": [person("Nuru")], "events": [
            {"programStage": "bsyk5Moo0gj", "program": "vmOQjAdnOpO", "orgUnit": "ty5AJ6ZU5f7",
             "occurredAt": "2024-06-01"}]}
        code, first = await self.call("POST", "/tracker", body, headers={"Idempotency-Key": "k-1"})
        self.assertEqual(code, 202)
        code, again = await self.call("POST", "/tracker", body, headers={"Idempotency-Key": "k-1"})
        self.assertEqual(code, 200)
        self.assertEqual(again["submission_id"], first["submission_id"])
        self.assertEqual(again["uids"], first["uids"])
        self.assertEqual(set(first["uids"]), {"trackedEntities", "events"})
        self.assertEqual(list(first["uids"]["events"]), ["events/0"])

    async def test_validate_only(self) -> None:
        """?validate_only=true answers the prepared payload and UIDs without recording anything."""
        code, body = await self.call("POST", "/tracker?validate_only=true", nested_payload("Val", "P-V"))
        self.assertEqual(code, 200, body)
        self.assertFalse(body["queued"])
        self.assertEqual(body["payload"]["trackedEntities"][0]["trackedEntity"], body["uids"]["trackedEntities"]["P-V"])
        self.assertEqual(await self.statuses(), {})
