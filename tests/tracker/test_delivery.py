"""Tracker submissions delivered to the simulator: UIDs, lost responses, validation errors, async jobs."""
from __future__ import annotations

from typing import Any

from tests.support.versions import per_version
from tests.tracker.rig import (
    DE_BIRTH_WEIGHT,
    FAC_CR,
    PR_CHILD,
    TEA_NATIONAL_ID,
    TrackerRig,
    flat_payload,
    nested_payload,
    person,
)


class ConsistentUidTests(TrackerRig):
    """Flat and nested payloads arrive with the UIDs the submitter was given."""

    async def test_nested_payload(self) -> None:
        """Each nested object is stored under the UID answered for its reference, linked to its parent."""
        self.make_dispatcher()
        sid, prepared = await self.submit_tracker(nested_payload("Amina", "P-1"))
        uids = prepared.response_extra["uids"]
        self.assertEqual(prepared.value_count, 3)
        self.assertEqual((await self.wait_final([sid]))[sid], "delivered")
        te_uid, en_uid, ev_uid = uids["trackedEntities"]["P-1"], uids["enrollments"]["P-1-E"], uids["events"]["P-1-B"]
        store = self.sim.store
        self.assertEqual(list(store.tracked_entities), [te_uid])
        self.assertEqual(list(store.enrollments), [en_uid])
        self.assertEqual(list(store.events), [ev_uid])
        self.assertEqual(store.enrollments[en_uid]["trackedEntity"], te_uid)
        self.assertEqual(store.events[ev_uid]["enrollment"], en_uid)
        self.assertEqual(store.events[ev_uid]["dataValues"][0], {"dataElement": DE_BIRTH_WEIGHT, "value": "3200"})
        self.assertNotIn("reference", store.tracked_entities[te_uid])  # the gateway extension is not sent
        row = await self.store.get(sid)
        self.assertEqual(row["import_count"]["created"], 3)
        self.assertEqual(row["dhis2_payload"]["trackedEntities"][0]["trackedEntity"], te_uid)
        post = self.tracker_posts()[0]
        self.assertEqual(post.query["async"], ["false"])
        self.assertEqual(post.query["importStrategy"], ["CREATE_AND_UPDATE"])

    async def test_flat_payload_with_references(self) -> None:
        """Flat enrollments, events and relationship ends given by reference point at the right UIDs."""
        self.make_dispatcher()
        sid, prepared = await self.submit_tracker(flat_payload("F"))
        uids = prepared.response_extra["uids"]
        self.assertEqual(prepared.response_extra["counts"],
                         {"trackedEntities": 2, "enrollments": 2, "events": 2, "relationships": 1})
        self.assertEqual((await self.wait_final([sid]))[sid], "delivered")
        store = self.sim.store
        mother, child = uids["trackedEntities"]["F-M"], uids["trackedEntities"]["F-C"]
        self.assertEqual(set(store.tracked_entities), {mother, child})
        self.assertEqual(store.enrollments[uids["enrollments"]["F-CE"]]["trackedEntity"], child)
        self.assertEqual(store.enrollments[uids["enrollments"]["F-ME"]]["trackedEntity"], mother)
        for ref in ("F-CB", "F-CV"):
            self.assertEqual(store.events[uids["events"][ref]]["enrollment"], uids["enrollments"]["F-CE"])
        rel = store.relationships[uids["relationships"]["F-R"]]
        self.assertEqual((rel["from"], rel["to"]), ({"trackedEntity": mother}, {"trackedEntity": child}))
        # 2.40 takes nested RelationshipItems: the gateway converted the submitter's flat shape.
        sent = [r for r in self.tracker_posts()][0]
        self.assertIn(b'"from":{"trackedEntity":{"trackedEntity":"%s"}}' % mother.encode(), sent.body)

    async def test_same_reference_same_uid_across_submissions(self) -> None:
        """The same patient submitted twice keeps one UID (uid_map) and DHIS2 updates it."""
        self.make_dispatcher()
        first, p1 = await self.submit_tracker({"trackedEntities": [person("Amina", reference="NID-9")]})
        await self.wait_final([first])
        second, p2 = await self.submit_tracker({"trackedEntities": [person("Amina K.", reference="NID-9")]})
        self.assertEqual((await self.wait_final([second]))[second], "delivered")
        uid = p1.response_extra["uids"]["trackedEntities"]["NID-9"]
        self.assertEqual(p2.response_extra["uids"]["trackedEntities"]["NID-9"], uid)
        self.assertEqual(list(self.sim.store.tracked_entities), [uid])
        self.assertEqual((await self.store.get(second))["import_count"]["updated"], 1)
        rows = await self.db.fetch("t", "SELECT source_system, source_id, object_type, uid FROM uid_map")
        self.assertEqual([(r["source_system"], r["source_id"], r["object_type"], r["uid"]) for r in rows],
                         [("clinic-emr", "NID-9", "TRACKED_ENTITY", uid)])

    async def test_later_flat_event_references_earlier_enrollment(self) -> None:
        """A flat event sent later may name its enrollment by the reference used in an earlier submission."""
        self.make_dispatcher()
        first, p1 = await self.submit_tracker(nested_payload("Zawadi", "P-7"))
        await self.wait_final([first])
        second, p2 = await self.submit_tracker({"events": [
            {"programStage": "oEZP0xOmRXt", "program": PR_CHILD, "orgUnit": "ty5AJ6ZU5f7",
             "occurredAt": "2024-05-01", "enrollment": "P-7-E", "reference": "P-7-V1",
             "dataValues": [{"dataElement": "vLuEXTZB6VP", "value": "OPV1"}]}]})
        self.assertEqual((await self.wait_final([second]))[second], "delivered")
        event = self.sim.store.events[p2.response_extra["uids"]["events"]["P-7-V1"]]
        self.assertEqual(event["enrollment"], p1.response_extra["uids"]["enrollments"]["P-7-E"])

    async def test_source_id_attribute(self) -> None:
        """With sourceIdAttribute, the national id value acts as the person's reference."""
        body = {"trackedEntities": [person("Juma")]}
        body["trackedEntities"][0]["attributes"].append({"attribute": TEA_NATIONAL_ID, "value": "CM-123"})
        p1 = await self.prepare(body, {"sourceIdAttribute": TEA_NATIONAL_ID})
        p2 = await self.prepare(body, {"sourceIdAttribute": TEA_NATIONAL_ID})
        uid = p1.response_extra["uids"]["trackedEntities"]["CM-123"]
        self.assertEqual(p2.response_extra["uids"]["trackedEntities"]["CM-123"], uid)
        self.assertNotIn("sourceIdAttribute", p1.import_params)  # a gateway option, not sent to DHIS2


class LostResponseTests(TrackerRig):
    """The import is committed but the answer never arrives."""

    async def test_lost_answer_confirmed_by_read_back(self) -> None:
        """After commit-then-drop the objects are read back by their UIDs: delivered, exactly one POST."""
        self.sim.faults.commit_then_drop(n=1, paths=["tracker"])
        self.make_dispatcher()
        sid, prepared = await self.submit_tracker(nested_payload("Neema", "P-2"))
        self.assertEqual((await self.wait_final([sid]))[sid], "delivered")
        store = self.sim.store
        self.assertEqual(len(store.tracked_entities), 1)
        self.assertEqual(len(store.enrollments), 1)
        self.assertEqual(len(store.events), 1)
        uids = prepared.response_extra["uids"]
        self.assertEqual(list(store.tracked_entities), [uids["trackedEntities"]["P-2"]])
        self.assertEqual(len(self.tracker_posts()), 1)
        row = await self.store.get(sid)
        self.assertEqual((row["attempts"], row["job_failures"]), (1, 0))
        events = await self.events(sid)
        self.assertEqual(events, ["queued", "processing", "confirmed_by_read_back"])


class ValidationErrorTests(TrackerRig):
    """DHIS2 validation errors end rejected or partial with every report stored."""

    async def test_error_with_nothing_stored_is_rejected(self) -> None:
        """An enrollment at an org unit outside the programme (E1041) rejects the whole atomic import."""
        self.make_dispatcher()
        payload = nested_payload("Baraka", "P-3")
        payload["trackedEntities"][0]["enrollments"][0]["orgUnit"] = FAC_CR
        sid, prepared = await self.submit_tracker(payload)
        self.assertEqual((await self.wait_final([sid]))[sid], "rejected")
        row = await self.store.get(sid)
        en_uid = prepared.response_extra["uids"]["enrollments"]["P-3-E"]
        codes = {(c["code"], c["trackerType"], c["uid"]) for c in row["conflicts"]}
        self.assertIn(("E1041", "ENROLLMENT", en_uid), codes)
        self.assertTrue(all(c["message"] for c in row["conflicts"]))
        self.assertEqual(row["import_count"]["created"], 0)
        self.assertIn("E1041", row["error"])
        self.assertEqual(self.sim.store.tracked_entities, {})

    async def test_object_mode_error_is_partial(self) -> None:
        """With atomicMode=OBJECT the valid person is stored; the bad event (E1302) and report are kept."""
        self.make_dispatcher()
        payload = nested_payload("Imani", "P-4")
        payload["trackedEntities"][0]["enrollments"][0]["events"][0]["dataValues"][0]["value"] = "heavy"
        sid, prepared = await self.submit_tracker(payload, {"atomicMode": "object"})
        self.assertEqual((await self.wait_final([sid]))[sid], "partial")
        row = await self.store.get(sid)
        uids = prepared.response_extra["uids"]
        self.assertEqual(row["import_params"]["atomicMode"], "OBJECT")
        self.assertEqual(row["import_count"]["created"], 2)
        self.assertEqual(row["import_count"]["ignored"], 1)
        self.assertEqual([(c["code"], c["trackerType"], c["uid"]) for c in row["conflicts"]],
                         [("E1302", "EVENT", uids["events"]["P-4-B"])])
        self.assertIn(uids["trackedEntities"]["P-4"], self.sim.store.tracked_entities)
        self.assertEqual(self.sim.store.events, {})

    async def test_submitter_strategy_is_honoured(self) -> None:
        """importStrategy=CREATE is sent as given; a person that exists already yields E1002."""
        self.make_dispatcher()
        first, p1 = await self.submit_tracker({"trackedEntities": [person("Asha", reference="A-1")]})
        await self.wait_final([first])
        second, _ = await self.submit_tracker({"trackedEntities": [person("Asha", reference="A-1")]},
                                              {"importStrategy": "CREATE"})
        await self.wait_final([second])
        self.assertEqual(self.tracker_posts()[-1].query["importStrategy"], ["CREATE"])
        row = await self.store.get(second)
        self.assertEqual([c["code"] for c in row["conflicts"]], ["E1002"])


class AsyncImportTests(TrackerRig):
    """Payloads above the threshold are imported as DHIS2 jobs and polled."""

    async_threshold = 200

    async def test_async_job_is_polled(self) -> None:
        """A large payload goes async=true; the job id is persisted, polled, and the report recorded."""
        self.sim.job_delay = 0.3
        self.make_dispatcher()
        sid, prepared = await self.submit_tracker(flat_payload("J"))
        self.assertEqual((await self.wait_final([sid]))[sid], "delivered")
        posts = self.tracker_posts()
        self.assertEqual(len(posts), 1)
        self.assertEqual(posts[0].query["async"], ["true"])
        polled = [r.path for r in self.sim.store.requests if "/tracker/jobs/" in r.path]
        job_id = polled[0].split("/")[4]
        self.assertIn(f"/api/tracker/jobs/{job_id}/report", polled)
        row = await self.store.get(sid)
        self.assertEqual(row["import_count"]["created"], 7)
        self.assertIsNone(row["dhis2_job_id"])  # cleared once final
        self.assertEqual(len(self.sim.store.tracked_entities), 2)

    async def test_failed_polls_are_asked_again(self) -> None:
        """Polls that fail (a 500 reading the job) are repeated in the same attempt: no retry spent, no re-post."""
        self.sim.job_delay = 0.3
        self.sim.faults.fail_next(3, 500, paths="tracker/jobs")
        self.make_dispatcher()
        sid, prepared = await self.submit_tracker(flat_payload("K"))
        self.assertEqual((await self.wait_final([sid]))[sid], "delivered")
        self.assertEqual(len(self.tracker_posts()), 1)
        polls = [r for r in self.sim.store.requests if "/tracker/jobs/" in r.path]
        self.assertGreaterEqual(len(polls), 4)  # three failed, then the ones that saw the job end
        row = await self.store.get(sid)
        self.assertEqual((row["attempts"], row["job_failures"]), (1, 0))
        self.assertEqual(await self.events(sid), ["queued", "processing", "delivered"])
        self.assertEqual(len(self.sim.store.tracked_entities), 2)

    async def test_polls_failing_on_and_on_end_the_attempt(self) -> None:
        """Beyond ``poll_failures`` failed polls in a row the attempt ends (a retry spent, the job kept)."""
        self.sim.job_delay = 0.3
        self.sim.faults.fail_next(6, 500, paths="tracker/jobs")  # poll_failures is 5
        self.make_dispatcher()
        sid, prepared = await self.submit_tracker(flat_payload("L"))
        self.assertEqual((await self.wait_final([sid]))[sid], "delivered")
        self.assertEqual(len(self.tracker_posts()), 1)  # the next attempt polled the same job
        row = await self.store.get(sid)
        self.assertEqual(row["attempts"], 2)
        self.assertEqual(await self.events(sid), ["queued", "processing", "retrying", "processing", "delivered"])

    async def test_persisted_job_is_resumed_not_reposted(self) -> None:
        """An attempt finding dhis2_job_id set polls that job and never posts the payload again."""
        self.sim.job_delay = 0.5
        sid, prepared = await self.submit_tracker(nested_payload("Rehema", "P-5"), push=False)
        row = await self.store.get(sid)
        outcome = await self.client.post_tracker(row["dhis2_payload"], {"async": "true"})
        job_id = outcome.job.id
        await self.db.execute("t", "UPDATE submissions SET dhis2_job_id = %s WHERE id = %s", (job_id, sid))
        await self.queue.enqueue("main", sid)
        self.make_dispatcher()
        self.assertEqual((await self.wait_final([sid]))[sid], "delivered")
        self.assertEqual(len(self.tracker_posts()), 1)  # only the one made above
        self.assertEqual(len(self.sim.store.tracked_entities), 1)
        self.assertEqual((await self.store.get(sid))["import_count"]["created"], 3)

    async def test_unknown_job_is_posted_again(self) -> None:
        """A persisted job DHIS2 no longer knows (it restarted) is re-posted with the same UIDs."""
        sid, prepared = await self.submit_tracker(nested_payload("Upendo", "P-6"), push=False)
        await self.db.execute("t", "UPDATE submissions SET dhis2_job_id = 'Zz0000000ab' WHERE id = %s", (sid,))
        await self.queue.enqueue("main", sid)
        self.make_dispatcher()
        self.assertEqual((await self.wait_final([sid]))[sid], "delivered")
        self.assertEqual(len(self.tracker_posts()), 1)
        self.assertEqual(list(self.sim.store.tracked_entities),
                         [prepared.response_extra["uids"]["trackedEntities"]["P-6"]])
        self.assertIn("/api/tracker/jobs/Zz0000000ab", [r.path for r in self.sim.store.requests])

    async def test_async_validation_error_report(self) -> None:
        """An ERROR job report (HTTP 200) still ends rejected with the reports stored."""
        self.sim.job_delay = 0.1
        self.make_dispatcher()
        payload = nested_payload("Tumaini", "P-8")
        payload["trackedEntities"][0]["enrollments"][0]["orgUnit"] = FAC_CR
        sid, _ = await self.submit_tracker(payload)
        self.assertEqual((await self.wait_final([sid]))[sid], "rejected")
        row = await self.store.get(sid)
        self.assertIn("E1041", [c["code"] for c in row["conflicts"]])


class OldVersionTests(TrackerRig):
    """2.37 takes flat RelationshipItems."""

    version = "2.37"

    async def test_relationship_items_flat_on_237(self) -> None:
        """Items submitted in the 2.38+ shape are sent flat to a 2.37 server and stored."""
        self.make_dispatcher()
        payload = flat_payload("O")
        rel = payload["relationships"][0]
        rel["from"] = {"trackedEntity": {"trackedEntity": "O-M"}}
        sid, prepared = await self.submit_tracker(payload)
        self.assertEqual((await self.wait_final([sid]))[sid], "delivered")
        uids = prepared.response_extra["uids"]
        stored = self.sim.store.relationships[uids["relationships"]["O-R"]]
        self.assertEqual(stored["from"], {"trackedEntity": uids["trackedEntities"]["O-M"]})


@per_version(TrackerRig, "2.36", "2.41", "2.42")
class _DeliveredAndRejected:
    """Delivered and rejected outcomes, with relationships (2.36: flat RelationshipItems, old messages;
    2.41: error args, no timings; 2.42: typed UIDs)."""

    async def test_delivered_and_rejected(self: Any) -> None:
        """A flat payload with a relationship is delivered; an E1041 payload is rejected with its report."""
        self.make_dispatcher()
        good, prepared = await self.submit_tracker(flat_payload("V"))
        bad_payload = nested_payload("Bad", "V-B")
        bad_payload["trackedEntities"][0]["enrollments"][0]["orgUnit"] = FAC_CR
        bad, _ = await self.submit_tracker(bad_payload)
        self.assertEqual(await self.wait_final([good, bad]), {good: "delivered", bad: "rejected"})
        self.assertEqual(len(self.sim.store.relationships), 1)
        self.assertEqual((await self.store.get(good))["import_count"]["created"], 7)
        conflicts = (await self.store.get(bad))["conflicts"]
        self.assertIn("E1041", [c["code"] for c in conflicts])
        self.assertTrue(all(c["trackerType"] and c["uid"] for c in conflicts))
