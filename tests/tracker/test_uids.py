"""UID assignment and reference resolution without a database (uid_map absent), and import options."""
from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from dhis2gw.dhis2.uids import is_valid_uid
from dhis2gw.interfaces import KindError
from dhis2gw.kinds.tracker_schema import import_options
from dhis2gw.kinds.tracker_uids import PreparedTracker, prepare_uids, render_relationship_items, uid_listing
from tests.tracker.rig import flat_payload, nested_payload, person

GIVEN = "AbCdEfGhIj1"


def prepare(body: dict[str, Any], **kwargs: Any) -> PreparedTracker:
    """prepare_uids without a uid_map never waits on I/O: run it synchronously."""
    results: list[PreparedTracker] = []
    Deferred.fromCoroutine(prepare_uids(body, source_system="s", uid_map=None, **kwargs)).addCallback(results.append)
    return results[0]


class PrepareUidsTests(SynchronousTestCase):
    """What the payload sent to DHIS2 looks like."""

    def test_every_object_gets_a_valid_uid(self) -> None:
        """Objects and notes without UIDs get fresh, distinct, valid ones; the references are stripped."""
        body = nested_payload()
        body["trackedEntities"][0]["enrollments"][0]["notes"] = [{"value": "first visit"}]
        result = prepare(body)
        te = result.payload["trackedEntities"][0]
        en = te["enrollments"][0]
        ev = en["events"][0]
        uids = [te["trackedEntity"], en["enrollment"], ev["event"], en["notes"][0]["note"]]
        self.assertTrue(all(is_valid_uid(u) for u in uids))
        self.assertEqual(len(set(uids)), 4)
        self.assertEqual((en["trackedEntity"], ev["enrollment"]), (te["trackedEntity"], en["enrollment"]))
        self.assertNotIn("reference", te)
        self.assertNotIn("reference", ev)
        self.assertIn("reference", body["trackedEntities"][0])  # the submitter's body is not changed
        self.assertEqual(result.object_count, 3)

    def test_given_uids_are_kept(self) -> None:
        """An object with a UID keeps it and is not listed unless it carries a reference too."""
        result = prepare({"trackedEntities": [person("A", trackedEntity=GIVEN), person("B")]})
        self.assertEqual(result.payload["trackedEntities"][0]["trackedEntity"], GIVEN)
        self.assertEqual(list(result.uids["trackedEntities"]), ["trackedEntities/1"])
        result = prepare({"trackedEntities": [person("A", trackedEntity=GIVEN, reference="R")]})
        self.assertEqual(result.uids, {"trackedEntities": {"R": GIVEN}})

    def test_flat_references_resolve_to_payload_uids(self) -> None:
        """Enrollment → person, event → enrollment and relationship ends follow the references."""
        result = prepare(flat_payload("X"))
        uids = result.uids
        self.assertEqual(result.payload["enrollments"][0]["trackedEntity"], uids["trackedEntities"]["X-C"])
        self.assertEqual(result.payload["events"][1]["enrollment"], uids["enrollments"]["X-CE"])
        rel = result.payload["relationships"][0]
        self.assertEqual(rel["from"], {"trackedEntity": uids["trackedEntities"]["X-M"]})
        self.assertEqual(result.errors, [])

    def test_problems_are_all_listed(self) -> None:
        """Duplicate references, duplicate UIDs and unknown references are reported together."""
        body = {"trackedEntities": [person("A", reference="R"), person("B", reference="R"),
                                    person("C", trackedEntity=GIVEN), person("D", trackedEntity=GIVEN)],
                "enrollments": [{"trackedEntity": "who?"}]}
        fields = [e["field"] for e in prepare(body).errors]
        self.assertEqual(fields, ["trackedEntities/1/reference", "trackedEntities/3/trackedEntity",
                                  "enrollments/0/trackedEntity"])

    def test_delete_needs_known_uids(self) -> None:
        """importStrategy DELETE never invents UIDs."""
        result = prepare({"trackedEntities": [{"reference": "R"}, {"trackedEntity": GIVEN}]}, strategy="DELETE")
        self.assertEqual([e["field"] for e in result.errors], ["trackedEntities/0"])

    def test_relationship_item_shapes(self) -> None:
        """Items are rendered flat for 2.36–2.37 and nested for 2.38+, in every place they occur."""
        payload = {"trackedEntities": [{"trackedEntity": GIVEN, "relationships": [
            {"relationship": "Rr000000001", "from": {"trackedEntity": GIVEN}, "to": {"event": "Ev000000001"}}]}],
            "relationships": [{"from": {"trackedEntity": {"trackedEntity": GIVEN}}, "to": {"trackedEntity": GIVEN}}]}
        nested = render_relationship_items(payload, nested=True)
        self.assertEqual(nested["trackedEntities"][0]["relationships"][0]["to"], {"event": {"event": "Ev000000001"}})
        self.assertEqual(nested["relationships"][0]["to"], {"trackedEntity": {"trackedEntity": GIVEN}})
        flat = render_relationship_items(payload, nested=False)
        self.assertEqual(flat["relationships"][0]["from"], {"trackedEntity": GIVEN})
        self.assertEqual(payload["relationships"][0]["to"], {"trackedEntity": GIVEN})  # input untouched
        self.assertIs(render_relationship_items(flat, nested=False), flat)

    def test_uid_listing_rebuilds_the_answer(self) -> None:
        """The reference/path → UID map can be rebuilt from the stored body and prepared payload."""
        body = flat_payload("L")
        body["events"].append({"programStage": "x", "enrollment": "L-ME"})
        result = prepare(body)
        self.assertEqual(uid_listing(body, result.payload), result.uids)


class ImportOptionTests(SynchronousTestCase):
    """Query parameters become DHIS2 import parameters."""

    def test_normalised(self) -> None:
        """Values are upper-cased, dryRun becomes importMode=VALIDATE, gateway options are kept apart."""
        params, gateway = import_options({"importStrategy": "create", "atomicMode": "object", "dryRun": "true",
                                          "orgUnitIdScheme": "code", "idScheme": "attribute:" + GIVEN,
                                          "skipRuleEngine": "TRUE", "sourceIdAttribute": GIVEN, "other": "x"})
        self.assertEqual(params, {"importStrategy": "CREATE", "atomicMode": "OBJECT", "importMode": "VALIDATE",
                                  "orgUnitIdScheme": "CODE", "idScheme": "ATTRIBUTE:" + GIVEN,
                                  "skipRuleEngine": "true"})
        self.assertEqual(gateway, {"sourceIdAttribute": GIVEN})

    def test_errors_listed(self) -> None:
        """Every bad option is named."""
        with self.assertRaises(KindError) as caught:
            import_options({"validationMode": "LAX", "idScheme": "ATTRIBUTE:nope", "skipSideEffects": "1",
                            "importMode": "COMMIT", "dryRun": "true", "sourceIdAttribute": "x"})
        self.assertEqual(caught.exception.status, 400)
        self.assertEqual([e["field"] for e in caught.exception.details["errors"]],
                         ["validationMode", "idScheme", "skipSideEffects", "dryRun", "sourceIdAttribute"])
