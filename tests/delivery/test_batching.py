"""Aggregate batching: one dataValueSets request for many submissions, each with its own result."""
from __future__ import annotations

from typing import Any

from dhis2gw.delivery.batching import BatchSettings, attribute, batch_key, merge
from dhis2gw.dhis2.outcome import Outcome, OutcomeKind
from tests.support.delivery import DE_ANC1, DE_OPD, DS_HMIS, FACILITIES, DeliveryRig
from twisted.trial.unittest import SynchronousTestCase


def _row(i: int, values: list[dict[str, Any]], **header: Any) -> dict[str, Any]:
    payload = {"dataSet": DS_HMIS, "period": "202401", "orgUnit": FACILITIES[i % 8], "dataValues": values}
    payload.update(header)
    return {"id": i, "kind": "aggregate", "destination": "main", "dhis2_payload": payload,
            "import_params": {"importStrategy": "CREATE_AND_UPDATE"}}


class MergeAndAttributeTests(SynchronousTestCase):
    """The pure parts: merging payloads and attributing DHIS2's answer."""

    def test_merge_inlines_headers_and_records_spans(self) -> None:
        """Header period/orgUnit move onto each value; spans say which values belong to whom."""
        rows = [_row(0, [{"dataElement": DE_OPD, "value": "1"}]),
                _row(1, [{"dataElement": DE_OPD, "value": "2"}, {"dataElement": DE_ANC1, "value": "3"}])]
        batch = merge(rows)
        self.assertEqual(batch.spans, ((0, 1), (1, 3)))
        self.assertEqual(batch.payload["dataSet"], DS_HMIS)
        self.assertEqual(batch.payload["dataValues"][2],
                         {"dataElement": DE_ANC1, "value": "3", "period": "202401", "orgUnit": FACILITIES[1]})

    def test_complete_date_goes_alone(self) -> None:
        """A submission that registers completeness is never batched."""
        self.assertIsNone(batch_key(_row(0, [{"dataElement": DE_OPD, "value": "1"}], completeDate="2024-02-01")))
        self.assertIsNotNone(batch_key(_row(0, [{"dataElement": DE_OPD, "value": "1"}])))

    def test_conflicts_are_attributed_by_index(self) -> None:
        """A conflict at merged index 2 belongs to the second submission, renumbered to its own index 1."""
        rows = [_row(0, [{"dataElement": DE_OPD, "value": "1"}]),
                _row(1, [{"dataElement": DE_OPD, "value": "2"}, {"dataElement": "BadDataEl01", "value": "3"}])]
        batch = merge(rows)
        conflict = {"object": "BadDataEl01", "errorCode": "E7610", "indexes": [2], "value": "not found"}
        outcome = Outcome(OutcomeKind.PARTIAL, http_status=409, conflicts=(conflict,), rejected_indexes=(2,),
                          import_count={"imported": 2, "updated": 0, "ignored": 0, "deleted": 0})
        first, second = attribute(batch, outcome)
        assert first is not None and second is not None
        self.assertEqual(first.kind, OutcomeKind.DELIVERED)
        self.assertEqual(first.import_count["imported"], 1)
        self.assertEqual(second.kind, OutcomeKind.PARTIAL)
        self.assertEqual(second.conflicts[0]["indexes"], [1])
        self.assertEqual(second.import_count["imported"], 1)

    def test_conflicts_without_indexes_split(self) -> None:
        """DHIS2 2.36 conflicts carry no indexes: every submission is delivered alone."""
        rows = [_row(0, [{"dataElement": DE_OPD, "value": "1"}]), _row(1, [{"dataElement": DE_OPD, "value": "2"}])]
        outcome = Outcome(OutcomeKind.PARTIAL, conflicts=({"object": "x", "value": "bad", "indexes": []},))
        self.assertEqual(attribute(merge(rows), outcome), [None, None])

    def test_transport_failures_apply_to_all(self) -> None:
        """A destination failure or a 500 is the same for every submission of the request."""
        rows = [_row(0, [{"dataElement": DE_OPD, "value": "1"}]), _row(1, [{"dataElement": DE_OPD, "value": "2"}])]
        for kind in (OutcomeKind.DESTINATION_FAILURE, OutcomeKind.RETRY, OutcomeKind.RATE_LIMITED):
            outcomes = attribute(merge(rows), Outcome(kind, reason="x"))
            self.assertEqual([o.kind for o in outcomes], [kind, kind])


class BatchedLikeUnbatched:
    """Mixed into a DeliveryRig: the same submissions batched and alone give the same results."""

    SUBMISSIONS: list[dict[str, Any]] = [
        {"dataSet": DS_HMIS, "period": "202401", "orgUnit": FACILITIES[0],
         "dataValues": [{"dataElement": DE_OPD, "value": "11"}]},
        {"dataSet": DS_HMIS, "period": "202401", "orgUnit": FACILITIES[1],
         "dataValues": [{"dataElement": DE_OPD, "value": "12"}, {"dataElement": "BadDataEl01", "value": "1"}]},
        {"dataSet": DS_HMIS, "period": "202401", "orgUnit": "NoSuchUnit1",
         "dataValues": [{"dataElement": DE_OPD, "value": "13"}]},
        {"dataSet": DS_HMIS, "period": "202401", "orgUnit": FACILITIES[2],
         "dataValues": [{"dataElement": DE_ANC1, "value": "14"}, {"dataElement": DE_OPD, "value": "15"}]},
    ]

    async def deliver_all(self, batching: Any) -> list[tuple[str, list[str]]]:
        ids = [await self.submit(body) for body in self.SUBMISSIONS]  # queued before the dispatcher starts
        self.make_dispatcher(batching=batching)
        await self.wait_final(ids)
        results = []
        for sid in ids:
            row = await self.store.get(sid)
            codes = sorted(c.get("errorCode") or c.get("object") or "" for c in row["conflicts"] or [])
            results.append((row["status"], codes))
        return results

    async def test_same_result_batched_or_not(self) -> None:
        """Status and conflicts per submission are identical; the batched run sends fewer requests."""
        alone = await self.deliver_all(None)
        alone_posts = len([r for r in self.sim.store.requests if "dataValueSets" in r.path])
        await self.dispatcher.stopService()
        self.sim.reset()
        await self.db.execute("t", "TRUNCATE submissions CASCADE")
        batched = await self.deliver_all(BatchSettings(linger=0.05))
        batched_posts = len([r for r in self.sim.store.requests if "dataValueSets" in r.path])
        self.assertEqual(batched, alone)
        self.assertEqual([s for s, _ in alone], ["delivered", "partial", self.unknown_ou_status, "delivered"])
        if self.version == "2.36":  # the WARNING batch had to be split: one extra request
            self.assertEqual(batched_posts, alone_posts + 1)
        else:
            self.assertLess(batched_posts, alone_posts)


class Batching240Tests(BatchedLikeUnbatched, DeliveryRig):
    """DHIS2 2.40: conflicts carry indexes and rejectedIndexes."""

    version = "2.40"
    unknown_ou_status = "rejected"


class Batching237Tests(BatchedLikeUnbatched, DeliveryRig):
    """DHIS2 2.37: conflicts carry indexes, HTTP 200 for WARNING."""

    version = "2.37"
    unknown_ou_status = "rejected"


class Batching236Tests(BatchedLikeUnbatched, DeliveryRig):
    """DHIS2 2.36: no indexes, so the batch is split and each submission delivered alone."""

    version = "2.36"
    unknown_ou_status = "rejected"
