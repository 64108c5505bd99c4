"""The attempts trail is append-only: a requeue goes on numbering, it never overwrites history."""
from __future__ import annotations

from dhis2gw.api.logs import attempts_from_events
from tests.support.delivery import DE_OPD, DS_HMIS, FACILITIES, DeliveryRig

VALUE = {"dataSet": DS_HMIS, "period": "202401", "orgUnit": FACILITIES[0],
         "dataValues": [{"dataElement": DE_OPD, "value": "7"}]}


class AttemptsTrailTests(DeliveryRig):
    """Two requeues of a failing submission keep every attempt ever made."""

    max_retries = 1

    async def requeue(self, sid: int, actor: str) -> None:
        moved = await self.store.requeue([sid], actor)
        self.assertEqual([r["id"] for r in moved], [sid])
        await self.queue.enqueue("main", sid)

    async def test_two_requeues_keep_every_attempt(self) -> None:
        """fail (2 attempts) → requeue → fail (2) → requeue → delivered: attempts 1..5, in order, each once."""
        self.sim.faults.error_rate(1.0, status=500, paths=["dataValueSets"])
        self.make_dispatcher()
        sid = await self.submit(VALUE)
        self.assertEqual(await self.wait_final([sid]), {sid: "failed"})
        await self.requeue(sid, "alice")
        await self.wait_final([sid], states=("processing", "retrying", "failed"))
        self.assertEqual(await self.wait_final([sid]), {sid: "failed"})
        self.sim.faults.clear()
        await self.requeue(sid, "bob")
        self.assertEqual(await self.wait_final([sid]), {sid: "delivered"})

        row = await self.store.get(sid)
        self.assertEqual(row["attempts"], 5)
        events = await self.store.events(sid)
        trail = attempts_from_events(events)
        self.assertEqual([a["attempt"] for a in trail], [1, 2, 3, 4, 5])
        self.assertEqual([a["outcome"] for a in trail], ["retrying", "failed", "retrying", "failed", "delivered"])
        self.assertEqual([a["http_status"] for a in trail], [500, 500, 500, 500, 200])
        self.assertTrue(all(a["started_at"] is not None for a in trail))
        # The requeues are events between the attempts, naming the operator and the count so far.
        requeues = [(e["actor"], e["detail"]) for e in events if e["event"] == "requeued"]
        self.assertEqual(requeues, [("alice", "requeued after 2 attempt(s)"), ("bob", "requeued after 4 attempt(s)")])
        order = [(e["event"], e["attempt"]) for e in events if e["event"] in ("processing", "requeued")]
        self.assertEqual(order, [("processing", 1), ("processing", 2), ("requeued", None), ("processing", 3),
                                 ("processing", 4), ("requeued", None), ("processing", 5)])
        # DHIS2 holds the value once (natural key), from the last attempt.
        self.assertEqual(len(self.sim.store.data_values), 1)
