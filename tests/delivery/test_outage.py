"""A DHIS2 outage is not a job failure (DESIGN.md §1.3)."""
from __future__ import annotations

import os

from tests.support.delivery import DeliveryRig

# The normal suite runs a smaller batch; `make fault` sets DHIS2GW_OUTAGE_SUBMISSIONS=1000.
SUBMISSIONS = int(os.environ.get("DHIS2GW_OUTAGE_SUBMISSIONS", "300"))


class OutageTests(DeliveryRig):
    """Submissions queued while DHIS2 is down all arrive once it is back, spending nothing."""

    timeout = 300
    probe_interval = 0.3

    async def test_outage_spends_no_retries(self) -> None:
        """The breaker opens, probes, closes; every submission ends delivered with 0 job failures."""
        ids = await self.submit_many(SUBMISSIONS)
        self.server.outage(3.0)
        dispatcher = self.make_dispatcher()
        statuses = await self.wait_final(ids, timeout=240)
        self.assertEqual(set(statuses.values()), {"delivered"})
        rows = await self.db.fetch("t", "SELECT max(job_failures) AS f, count(*) AS n FROM submissions")
        self.assertEqual((rows[0]["f"], rows[0]["n"]), (0, SUBMISSIONS))
        breaker = dispatcher.breakers["main"]
        self.assertGreaterEqual(breaker.opened_count, 1)
        self.assertEqual(breaker.state, "closed")
        self.assertEqual(len(self.sim.store.data_values), SUBMISSIONS)
        self.assertLessEqual(self.sim.max_in_flight, self.max_concurrent)
