"""DHIS2 2.43 answers end to end: the transient BatchHandler 409 is retried; the dryRun NPE 500 is poison."""
from __future__ import annotations

from typing import Any

from dhis2gw.dhis2.uids import generate_uid
from dhis2gw.interfaces import IngestRequest
from dhis2gw.storage.submissions import NewSubmission
from tests.support.delivery import DE_OPD, FACILITIES, DeliveryRig

DE_REMARKS = "eapB1gPonCZ"  # LONG_TEXT: dryRun on 2.43.2+ dies with the DataEntryGroup NPE


class Answers243Tests(DeliveryRig):
    """A simulator answering as DHIS2 2.43.2 does."""

    version = "2.43.2"

    async def submit_with(self, body: dict[str, Any], query: dict[str, str]) -> int:
        """Like ``submit``, with ingest query parameters (import options such as ``dryRun``)."""
        prepared = await self.kind.prepare(IngestRequest(body, None, "", "main", "main", query))
        created = await self.store.create(NewSubmission(
            uid=generate_uid(), kind="aggregate", destination="main", submitter_id=None, endpoint="/api/v2/aggregate",
            payload=body, dhis2_payload=prepared.dhis2_payload, import_params=prepared.import_params,
            value_count=prepared.value_count))
        await self.queue.enqueue("main", created.row["id"])
        return int(created.row["id"])

    async def test_batch_handler_409_is_retried_and_delivered(self) -> None:
        """completeDate for a new period meets the 409 'Failed to flush BatchHandler'; the retry delivers it."""
        self.sim.faults.batch_handler_flush(True)
        sid = await self.submit({"orgUnit": FACILITIES[0], "period": "202505", "completeDate": "2025-06-01",
                                 "dataValues": {"OPD": 3}})
        self.make_dispatcher()
        self.assertEqual(await self.wait_final([sid]), {sid: "delivered"})
        events = await self.events(sid)
        self.assertIn("retrying", events)
        self.assertEqual(events[-1], "delivered")
        posts = [r for r in self.sim.store.requests if r.path.endswith("/dataValueSets")]
        self.assertEqual(len(posts), 2)
        self.assertEqual(len(self.sim.store.completions), 1)
        self.assertEqual([r.value for k, r in self.sim.store.data_values.items() if k[0] == DE_OPD], ["3"])

    async def test_dry_run_500_fails_only_its_payload(self) -> None:
        """The deterministic NPE: that submission ends failed after max_retries; the others are delivered."""
        await self.insert_mappings({"REMARKS": (DE_REMARKS, "")})
        poison = await self.submit_with({"orgUnit": FACILITIES[0], "period": "202505",
                                         "dataValues": {"REMARKS": "stock-out all month"}}, {"dryRun": "true"})
        others = [await self.submit({"orgUnit": FACILITIES[i], "period": "202505", "dataValues": {"OPD": i + 1}})
                  for i in range(1, 4)]
        self.make_dispatcher()
        final = await self.wait_final([poison, *others])
        self.assertEqual(final, {poison: "failed", **{sid: "delivered" for sid in others}})
        row = await self.store.get(poison)
        self.assertIn("DataEntryGroup", row["error"])
        npe = [r for r in self.sim.store.requests if r.path.endswith("/dataValueSets") and r.query.get("dryRun")]
        self.assertEqual(len(npe), self.max_retries + 1)
        self.assertEqual(len(self.sim.store.data_values), 3)
