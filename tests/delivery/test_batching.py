"""Aggregate batching: one dataValueSets request for many submissions, each with its own result."""
from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from dhis2gw.delivery.batching import BatchSettings, attribute, batch_key, merge, plan, value_keys
from dhis2gw.dhis2.outcome import Outcome, OutcomeKind
from tests.delivery.batch_replay import Replay
from tests.support.delivery import DE_ANC1, DE_OPD, DE_WEIGHT, DS_HMIS, FACILITIES, DeliveryRig

DE_MAL_DEATHS = "g5Jsa2EvlhL"  # in the HMIS and the malaria data set (E8002 on 2.43 without a dataSet)


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
        self.assertEqual([s for s, _ in alone], ["delivered", "partial", "rejected", "delivered"])
        if self.version == "2.36":  # the WARNING batch had to be split: one extra request
            self.assertEqual(batched_posts, alone_posts + 1)
        else:
            self.assertLess(batched_posts, alone_posts)


def _batching_tests(version: str, doc: str) -> type:
    """``BatchedLikeUnbatched`` against the simulator at ``version``: the class ``Batching2xxTests``."""
    name = "Batching{}{}Tests".format(*version.split(".")[:2])
    return type(name, (BatchedLikeUnbatched, DeliveryRig),
                {"version": version, "__doc__": doc, "__module__": __name__, "__qualname__": name})


Batching236Tests = _batching_tests("2.36", "DHIS2 2.36: no indexes, so the batch is split and each submission "
                                           "delivered alone.")
Batching237Tests = _batching_tests("2.37", "DHIS2 2.37: conflicts carry indexes, HTTP 200 for WARNING.")
Batching240Tests = _batching_tests("2.40", "DHIS2 2.40: conflicts carry indexes and rejectedIndexes.")
Batching242Tests = _batching_tests("2.42", "DHIS2 2.42: the last version before the data entry pipeline.")
Batching243Tests = _batching_tests("2.43.2", "DHIS2 2.43.2: 200 WARNING for a mixed batch, E80xx/E81xx conflicts "
                                             "placed by rejectedIndexes.")


class SameKeyPlanTests(SynchronousTestCase):
    """2.43 refuses two values with the same key in one import (E8128): the plan never makes one."""

    def test_overlapping_submission_waits_for_the_next_request(self) -> None:
        """Same key (values 1 then 2): two requests, in submission order; the others share the first."""
        rows = [_row(0, [{"dataElement": DE_OPD, "value": "1"}]), _row(1, [{"dataElement": DE_ANC1, "value": "5"}]),
                _row(8, [{"dataElement": DE_OPD, "value": "2"}])]  # FACILITIES[8 % 8] == FACILITIES[0]
        chunks = plan(list(reversed(rows)), BatchSettings())
        self.assertEqual([[r["id"] for r in c] for c in chunks], [[0, 1], [8]])
        for chunk in chunks:
            keys = [k for r in chunk for k in value_keys(r)]
            self.assertEqual(len(keys), len(set(keys)))

    def test_default_combo_spelled_or_not_is_one_key(self) -> None:
        """An explicit default COC/AOC and an omitted one write the same data value."""
        a = _row(0, [{"dataElement": DE_OPD, "value": "1", "categoryOptionCombo": "HllvX50cXC0"}])
        b = _row(8, [{"dataElement": DE_OPD, "value": "2"}], attributeOptionCombo="HllvX50cXC0")
        self.assertEqual(value_keys(a), value_keys(b))
        self.assertEqual(len(plan([a, b], BatchSettings())), 2)

    def test_data_set_stays_on_top(self) -> None:
        """The merged import names the data set the submissions named."""
        rows = [_row(0, [{"dataElement": DE_OPD, "value": "1"}]), _row(1, [{"dataElement": DE_OPD, "value": "2"}])]
        self.assertEqual(merge(plan(rows, BatchSettings())[0]).payload["dataSet"], DS_HMIS)

    def test_whole_import_refusals_split(self) -> None:
        """2.43 409 ERROR: rejectedIndexes, E8128 or E8002 -> each delivered alone; an unknown data set -> all."""
        rows = [_row(0, [{"dataElement": DE_OPD, "value": "1"}]), _row(1, [{"dataElement": DE_OPD, "value": "2"}])]
        batch = merge(rows)
        zero = {"imported": 0, "updated": 0, "ignored": 1, "deleted": 0}
        value_level = Outcome(OutcomeKind.REJECTED, conflicts=({"errorCode": "E8122", "indexes": [0]},),
                              rejected_indexes=(0, 1), import_count=zero)
        self.assertEqual(attribute(batch, value_level), [None, None])
        for code in ("E8128", "E8002", "E8003"):
            whole = Outcome(OutcomeKind.REJECTED, conflicts=({"errorCode": code, "indexes": []},),
                            import_count=dict(zero, ignored=0))
            self.assertEqual(attribute(batch, whole), [None, None], code)
        shared = Outcome(OutcomeKind.REJECTED, conflicts=({"errorCode": "E8000", "indexes": []},))
        self.assertEqual(attribute(batch, shared), [shared, shared])

    def test_unindexed_conflicts_follow_rejected_indexes(self) -> None:
        """2.43 E8030 names periods, not rows: the rows come from rejectedIndexes."""
        rows = [_row(0, [{"dataElement": DE_OPD, "value": "1"}]),
                _row(1, [{"dataElement": DE_OPD, "value": "2", "period": "209912"},
                         {"dataElement": DE_ANC1, "value": "3"}])]
        e8030 = {"errorCode": "E8030", "value": "Untimely data entry for data set x and period(s): [209912]",
                 "indexes": []}
        outcome = Outcome(OutcomeKind.PARTIAL, http_status=200, conflicts=(e8030,), rejected_indexes=(1,),
                          import_count={"imported": 0, "updated": 2, "ignored": 0, "deleted": 0})
        first, second = attribute(merge(rows), outcome)
        assert first is not None and second is not None
        self.assertEqual((first.kind, second.kind), (OutcomeKind.DELIVERED, OutcomeKind.PARTIAL))
        self.assertEqual(second.rejected_indexes, (0,))
        self.assertEqual([c["errorCode"] for c in second.conflicts], ["E8030"])


def _queue_rows(draws: list[tuple[int, str, bool, dict[str, str], bool]]) -> list[dict[str, Any]]:
    rows = []
    for i, (unit, period, named, values, complete) in enumerate(draws):
        payload: dict[str, Any] = {"period": period, "orgUnit": FACILITIES[unit],
                                   "dataValues": [{"dataElement": de, "value": v} for de, v in values.items()]}
        if named:
            payload["dataSet"] = DS_HMIS
        if complete:  # registers completeness: never batched, still ordered with the others
            payload["completeDate"] = "2025-03-01"
        rows.append({"id": i + 1, "kind": "aggregate", "destination": "main", "dhis2_payload": payload,
                     "import_params": {"importStrategy": "CREATE_AND_UPDATE"}})
    return rows


#: Overlapping submissions: 2 facilities x 2 periods (one beyond the open periods), 4 data elements
#: (one in two data sets), small values (repeats are "unchanged"), some invalid ("x" for a number),
#: some registering completeness (sent alone).
SUBMISSION = st.tuples(
    st.integers(0, 1), st.sampled_from(["202501", "202502", "209912"]), st.booleans(),
    st.dictionaries(st.sampled_from([DE_OPD, DE_ANC1, DE_WEIGHT, DE_MAL_DEATHS]),
                    st.sampled_from(["1", "2", "3", "x"]), min_size=1, max_size=3),
    st.booleans())


class BatchedEqualsOneByOneTests(SynchronousTestCase):
    """Property: any queue of overlapping submissions leaves DHIS2 as delivering them one by one in order."""

    def check(self, version: str, draws: list[Any]) -> None:
        rows = _queue_rows(draws)
        alone, batched = Replay(version), Replay(version)
        statuses_alone = alone.alone(rows)
        statuses_batched = batched.batched(rows, BatchSettings(max_values=6))
        self.assertEqual(batched.state(), alone.state())
        for sid, status in statuses_alone.items():
            # "delivered" exactly when nothing was refused, batched or not. A submission whose
            # accepted values were already in DHIS2 (unchanged, so "ignored") and whose others were
            # refused is "rejected" alone (nothing stored) and "partial" in a batch that stored
            # other submissions' values: the counts of a batch cannot tell the two apart.
            if status != statuses_batched[sid]:
                self.assertEqual({status, statuses_batched[sid]}, {"partial", "rejected"}, sid)

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(SUBMISSION, min_size=1, max_size=8))
    def test_v240(self, draws: list[Any]) -> None:
        """2.40: the last write wins either way; batched statuses equal lone ones."""
        self.check("2.40", draws)

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(SUBMISSION, min_size=1, max_size=8))
    def test_v243(self, draws: list[Any]) -> None:
        """2.43.0 (409 WARNING) : no E8128 from merging; E8002 and 409 ERROR refusals still attributed right."""
        self.check("2.43.0", draws)

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(SUBMISSION, min_size=1, max_size=8))
    def test_v2432(self, draws: list[Any]) -> None:
        """2.43.2 (200 WARNING, superuser exempt from future periods)."""
        self.check("2.43.2", draws)


class SameKeyAt243Tests(DeliveryRig):
    """DHIS2 2.43 with batching on: the same data value written twice is two imports, the last one wins."""

    version = "2.43.2"

    async def test_same_key_two_imports_last_wins(self) -> None:
        """Values 1 then 2 for one key: both delivered, in two POSTs, and DHIS2 holds 2 (no E8128)."""
        first = await self.submit({"orgUnit": FACILITIES[0], "period": "202401", "dataValues": {"OPD": 1}})
        other = await self.submit({"orgUnit": FACILITIES[1], "period": "202401", "dataValues": {"OPD": 7}})
        second = await self.submit({"orgUnit": FACILITIES[0], "period": "202401", "dataValues": {"OPD": 2}})
        self.make_dispatcher(batching=BatchSettings(linger=0.05))
        final = await self.wait_final([first, other, second])
        self.assertEqual(final, {first: "delivered", other: "delivered", second: "delivered"})
        posts = [r for r in self.sim.store.requests if r.path.endswith("/dataValueSets")]
        self.assertEqual(len(posts), 2)
        values = {(k[0], k[2]): r.value for k, r in self.sim.store.data_values.items()}
        self.assertEqual(values, {(DE_OPD, FACILITIES[0]): "2", (DE_OPD, FACILITIES[1]): "7"})
        import json
        self.assertEqual([json.loads(p.body).get("dataSet") for p in posts], [DS_HMIS, DS_HMIS])
