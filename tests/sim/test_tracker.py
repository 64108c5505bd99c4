"""Tracker import semantics: flat/nested, client UIDs, strategies, atomic modes, relationships."""
from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from .support import (
    DE_RDT,
    DE_VACCINE,
    FAC_CR,
    FAC_NR,
    PR_CHILD,
    PS_MAL,
    PS_VACC,
    RT_MOTHER_CHILD,
    TEA_FIRST,
    StubClient,
    person,
)


def sync(client: StubClient, payload: Any, query: str = "") -> tuple[int, Any]:
    code, body, _ = client.post("/api/tracker?async=false" + query, payload)
    return code, body


class TrackerImportTests(SynchronousTestCase):
    """What the tracker importer stores and reports."""

    def test_flat_and_nested_keep_uids(self) -> None:
        """Nested and flat payloads store the same objects under the client's UIDs; missing UIDs are generated."""
        nested = person("Te1aaaaaaaa")
        nested["enrollments"] = [{"enrollment": "En1aaaaaaaa", "program": PR_CHILD, "orgUnit": FAC_NR,
                                  "enrolledAt": "2024-02-01",
                                  "events": [{"event": "Ev1aaaaaaaa", "programStage": PS_VACC, "orgUnit": FAC_NR,
                                              "occurredAt": "2024-03-01",
                                              "dataValues": [{"dataElement": DE_VACCINE, "value": "BCG"}]}]}]
        client = StubClient("2.41")
        code, body = sync(client, {"trackedEntities": [nested]})
        self.assertEqual((code, body["stats"]["created"]), (200, 3), body)
        self.assertEqual(client.sim.store.events["Ev1aaaaaaaa"]["enrollment"], "En1aaaaaaaa")
        self.assertEqual(client.sim.store.enrollments["En1aaaaaaaa"]["trackedEntity"], "Te1aaaaaaaa")
        flat = {"trackedEntities": [person("Te2aaaaaaaa")],
                "enrollments": [{"enrollment": "En2aaaaaaaa", "trackedEntity": "Te2aaaaaaaa", "program": PR_CHILD,
                                 "orgUnit": FAC_NR, "enrolledAt": "2024-02-01"}],
                "events": [{"event": "Ev2aaaaaaaa", "enrollment": "En2aaaaaaaa", "programStage": PS_VACC,
                            "orgUnit": FAC_NR, "occurredAt": "2024-03-01"},
                           {"programStage": PS_MAL, "orgUnit": FAC_CR, "occurredAt": "2024-03-01",
                            "dataValues": [{"dataElement": DE_RDT, "value": "true"}]}],
                "relationships": [{"relationship": "Re1aaaaaaaa", "relationshipType": RT_MOTHER_CHILD,
                                   "from": {"trackedEntity": {"trackedEntity": "Te1aaaaaaaa"}},
                                   "to": {"trackedEntity": {"trackedEntity": "Te2aaaaaaaa"}}}]}
        code, body = sync(client, flat)
        self.assertEqual((code, body["stats"]["created"]), (200, 5), body)
        generated = [u for u in client.sim.store.events if u not in ("Ev1aaaaaaaa", "Ev2aaaaaaaa")]
        self.assertEqual(len(generated), 1)
        self.assertEqual(len(generated[0]), 11)
        self.assertEqual(client.sim.store.relationships["Re1aaaaaaaa"]["to"], {"trackedEntity": "Te2aaaaaaaa"})

    def test_strategies(self) -> None:
        """CREATE twice → E1002; CREATE_AND_UPDATE twice → updated; UPDATE unknown → E1063; DELETE."""
        client = StubClient("2.40")
        payload = {"trackedEntities": [person("Te3aaaaaaaa")]}
        self.assertEqual(sync(client, payload, "&importStrategy=CREATE")[0], 200)
        code, body = sync(client, payload, "&importStrategy=CREATE")
        self.assertEqual((code, body["validationReport"]["errorReports"][0]["errorCode"]), (409, "E1002"))
        self.assertNotIn("bundleReport", body)
        self.assertEqual(body["stats"]["ignored"], 1)
        code, body = sync(client, payload)
        self.assertEqual((code, body["stats"]["updated"]), (200, 1))
        self.assertEqual(client.sim.store.write_counts["Te3aaaaaaaa"], 2)
        code, body = sync(client, {"trackedEntities": [person("Te4aaaaaaaa")]}, "&importStrategy=UPDATE")
        self.assertEqual(body["validationReport"]["errorReports"][0]["errorCode"], "E1063")
        code, body = sync(client, {"trackedEntities": [{"trackedEntity": "Te3aaaaaaaa"}]}, "&importStrategy=DELETE")
        self.assertEqual((code, body["stats"]["deleted"]), (200, 1))
        self.assertNotIn("Te3aaaaaaaa", client.sim.store.tracked_entities)

    def test_validation_codes(self) -> None:
        """E1090 mandatory attribute, E1007 value type, E1011/E1069/E1005 unknown metadata, E1033 no enrollment."""
        client = StubClient("2.42")
        te = person("Te5aaaaaaaa")
        te["attributes"] = [{"attribute": TEA_FIRST, "value": "Amina"},
                            {"attribute": "gG0gOd8XsCL", "value": "not a date"}]
        payload = {"trackedEntities": [te, person("Te6aaaaaaaa", trackedEntityType="Q9GufDoplCL")],
                   "enrollments": [{"enrollment": "En5aaaaaaaa", "trackedEntity": "Te6aaaaaaaa",
                                    "program": "Q9GufDoplCL", "orgUnit": FAC_NR, "enrolledAt": "2024-02-01"}],
                   "events": [{"event": "Ev5aaaaaaaa", "programStage": PS_MAL, "orgUnit": "Q9GufDoplCL",
                               "occurredAt": "2024-03-01"},
                              {"event": "Ev6aaaaaaaa", "programStage": PS_VACC, "orgUnit": FAC_NR,
                               "occurredAt": "2024-03-01"}]}
        code, body = sync(client, payload)
        self.assertEqual(code, 409)
        found = [(e["errorCode"], e["uid"]) for e in body["validationReport"]["errorReports"]]
        self.assertEqual(found, [("E1007", "Te5aaaaaaaa"), ("E1090", "Te5aaaaaaaa"), ("E1005", "Te6aaaaaaaa"),
                                 ("E5000", "En5aaaaaaaa"), ("E1011", "Ev5aaaaaaaa"), ("E1033", "Ev6aaaaaaaa")])
        self.assertEqual(body["stats"], {"created": 0, "updated": 0, "deleted": 0, "ignored": 5, "total": 5})
        self.assertEqual(client.sim.store.tracked_entities, {})

    def test_atomic_object_mode(self) -> None:
        """atomicMode=OBJECT commits the valid objects, skips invalid ones and their dependants (E5000)."""
        client = StubClient("2.41")
        bad = person("Te7aaaaaaaa", orgUnit="Q9GufDoplCL")
        payload = {"trackedEntities": [person("Te8aaaaaaaa"), bad],
                   "enrollments": [{"enrollment": "En7aaaaaaaa", "trackedEntity": "Te7aaaaaaaa", "program": PR_CHILD,
                                    "orgUnit": FAC_NR, "enrolledAt": "2024-02-01"}]}
        code, body = sync(client, payload, "&atomicMode=OBJECT")
        self.assertEqual((code, body["status"]), (409, "ERROR"))
        self.assertEqual([e["errorCode"] for e in body["validationReport"]["errorReports"]], ["E1049", "E5000"])
        self.assertEqual(body["stats"], {"created": 1, "updated": 0, "deleted": 0, "ignored": 2, "total": 3})
        self.assertEqual(list(client.sim.store.tracked_entities), ["Te8aaaaaaaa"])
        self.assertEqual(body["bundleReport"]["typeReportMap"]["TRACKED_ENTITY"]["objectReports"][0]["uid"],
                         "Te8aaaaaaaa")

    def test_parameters_and_relationship_shape(self) -> None:
        """Bad enum values: 400 from 2.38, silently defaulted on 2.37; old relationship items rejected on 2.38+."""
        code, body = sync(StubClient("2.40"), {}, "&reportMode=INVALID")
        self.assertEqual(code, 400)
        self.assertIn("Value 'INVALID' is not valid for parameter reportMode", body["message"])
        self.assertEqual(sync(StubClient("2.37"), {}, "&reportMode=INVALID")[0], 200)
        rel = {"relationships": [{"relationshipType": RT_MOTHER_CHILD, "from": {"trackedEntity": "Te1aaaaaaaa"},
                                  "to": {"trackedEntity": "Te2aaaaaaaa"}}]}
        self.assertEqual(sync(StubClient("2.38"), rel)[0], 400)
        code, body = sync(StubClient("2.37"), rel)
        self.assertEqual(body["validationReport"]["errorReports"][0]["errorCode"], "E4012")
        code, body = sync(StubClient("2.40"), {"trackedEntities": [person("Te9aaaaaaaa")]}, "&reportMode=FULL")
        self.assertIn("timingsStats", body)
        code, body = sync(StubClient("2.41"), {"trackedEntities": [person("Te9aaaaaaaa")]}, "&reportMode=FULL")
        self.assertNotIn("timingsStats", body)
