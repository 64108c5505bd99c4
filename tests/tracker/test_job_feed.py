"""A tracker job that fails inside DHIS2: 2.44 wipes its feed; the poller asks /api/jobConfigurations/{id}."""
from __future__ import annotations

from typing import TYPE_CHECKING

from tests.support.versions import per_version
from tests.tracker.rig import TrackerRig, flat_payload

if TYPE_CHECKING:  # the mixin is a TrackerRig for the type checker only (the runner collects its versions)
    _Rig = TrackerRig
else:
    _Rig = object


@per_version(TrackerRig, "2.43.2", "2.44")
class _FailedJob(_Rig):
    """A tracker job failing inside DHIS2 ends the attempt, and the payload is posted again. DHIS2 2.44
    wipes a failed job's notifications a second after its ERROR row (dhis2w #143); 2.43.2 keeps the
    feed, and its ERROR row without a report leads to the same answer."""

    async_threshold = 200

    async def rig_setup(self) -> None:
        await super().rig_setup()
        # Waiting out an unknown job (the old way to end) would take longer than these tests wait.
        self.tracker.unknown_job_grace = 600.0

    async def test_failed_job_ends_the_attempt_and_is_posted_again(self) -> None:
        """The job fails: the attempt ends RETRY job_failed (a retry spent, the job id forgotten); the next
        attempt posts again and is delivered. Without the fallback the poller waits on an empty feed."""
        self.sim.job_delay = 0.2
        self.sim.jobs.fail_next(1)
        self.make_dispatcher()
        sid, _ = await self.submit_tracker(flat_payload("W"))
        self.assertEqual((await self.wait_final([sid]))[sid], "delivered")
        self.assertEqual(len(self.tracker_posts()), 2)
        self.assertTrue(any(r.path.startswith("/api/jobConfigurations/") for r in self.sim.store.requests))
        row = await self.store.get(sid)
        self.assertEqual((row["attempts"], row["job_failures"]), (2, 1))
        self.assertEqual(await self.events(sid), ["queued", "processing", "retrying", "processing", "delivered"])
        self.assertEqual(len(self.sim.store.tracked_entities), 2)

    async def test_failing_job_spends_retries_then_fails(self) -> None:
        """A job that fails every time ends failed after max_retries (it is not re-posted forever)."""
        self.sim.job_delay = 0.1
        self.sim.jobs.fail_next(100)
        self.make_dispatcher()
        sid, _ = await self.submit_tracker(flat_payload("X"))
        self.assertEqual((await self.wait_final([sid]))[sid], "failed")
        self.assertEqual(len(self.tracker_posts()), self.max_retries + 1)
