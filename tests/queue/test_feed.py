"""The Lua-backed queue against real Redis, with time driven by a Clock."""
from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from dhis2gw.queue.feed import SubmissionQueue
from tests.support.backends import open_redis


class SubmissionQueueTests(TestCase):
    """Enqueue, claim, lease, ack, delay, reap and pause on real Redis."""

    def setUp(self) -> None:
        # Redis commands run on the real reactor; the queue's notion of "now" is the Clock.
        self.redis, self.prefix = open_redis(self)
        self.clock = Clock()
        self.clock.advance(1_000_000)
        self.queue = SubmissionQueue(self.redis, self.clock, self.prefix, lease_seconds=60)

    async def test_fifo_claim_and_ack(self) -> None:
        """Ids come out in arrival order; ack forgets them everywhere."""
        for i in (1, 2, 3):
            self.assertTrue(await self.queue.enqueue("main", i))
        self.assertEqual([await self.queue.claim("main") for _ in range(3)], [1, 2, 3])
        self.assertIsNone(await self.queue.claim("main"))
        depth = await self.queue.depth("main")
        self.assertEqual((depth.ready, depth.processing), (0, 3))
        for i in (1, 2, 3):
            await self.queue.ack("main", i)
        depth = await self.queue.depth("main")
        self.assertEqual((depth.ready, depth.processing, depth.delayed), (0, 0, 0))
        self.assertEqual(await self.queue.known([("main", 1)]), [False])

    async def test_enqueue_twice_is_ignored(self) -> None:
        """A second push of the same id (e.g. a late retry of a timed-out push) is dropped."""
        self.assertTrue(await self.queue.enqueue("main", 7))
        self.assertFalse(await self.queue.enqueue("main", 7))
        self.assertEqual(await self.queue.claim("main"), 7)
        self.assertFalse(await self.queue.enqueue("main", 7))
        self.assertIsNone(await self.queue.claim("main"))

    async def test_lease_expiry_while_attempt_runs(self) -> None:
        """A lease not renewed for longer than its length is reaped back to ready; one renewed is not."""
        await self.queue.enqueue("main", 1)
        await self.queue.enqueue("main", 2)
        self.assertEqual(await self.queue.claim("main"), 1)
        self.assertEqual(await self.queue.claim("main"), 2)
        self.clock.advance(45)
        self.assertTrue(await self.queue.heartbeat("main", 2))   # 2 keeps beating
        self.assertEqual(await self.queue.reap(), [])
        self.clock.advance(20)                                    # 1's lease (60 s) is now past
        self.assertEqual(await self.queue.reap(), [("main", 1)])
        self.assertFalse(await self.queue.heartbeat("main", 1))  # the slow worker learns it lost the lease
        self.assertEqual(await self.queue.claim("main"), 1)
        depth = await self.queue.depth("main")
        self.assertEqual(depth.processing, 2)

    async def test_processing_id_without_lease_is_recovered(self) -> None:
        """An id sitting in processing with no lease (a crash mid-way) goes back to ready."""
        await self.queue.enqueue("main", 5)
        self.assertEqual(await self.queue.claim("main"), 5)
        await self.redis.call("ZREM", self.queue.leases_key, "main|5")
        self.assertEqual(await self.queue.reap(), [("main", 5)])
        self.assertEqual(await self.queue.claim("main"), 5)

    async def test_delay_and_move_due(self) -> None:
        """A delayed id becomes claimable only when its time comes."""
        await self.queue.enqueue("main", 9)
        self.assertEqual(await self.queue.claim("main"), 9)
        await self.queue.delay("main", 9, self.clock.seconds() + 30)
        self.assertEqual(await self.queue.move_due(), 0)
        self.assertIsNone(await self.queue.claim("main"))
        self.assertEqual((await self.queue.depth("main")).delayed, 1)
        self.clock.advance(31)
        self.assertEqual(await self.queue.move_due(), 1)
        self.assertEqual(await self.queue.claim("main"), 9)

    async def test_release_puts_id_first(self) -> None:
        """A released id (DHIS2 was down) is the next one claimed, ahead of newer ones."""
        await self.queue.enqueue("main", 1)
        await self.queue.enqueue("main", 2)
        self.assertEqual(await self.queue.claim("main"), 1)
        await self.queue.release("main", 1)
        self.assertEqual(await self.queue.claim("main"), 1)

    async def test_pause_blocks_claims_per_destination(self) -> None:
        """A paused destination yields nothing; others are unaffected; resume restores it."""
        await self.queue.enqueue("main", 1)
        await self.queue.enqueue("cc1", 2)
        await self.queue.pause("main")
        self.assertIsNone(await self.queue.claim("main"))
        self.assertEqual(await self.queue.claim("cc1"), 2)
        self.assertTrue((await self.queue.depth("main")).paused)
        await self.queue.resume("main")
        self.assertEqual(await self.queue.claim("main"), 1)

    async def test_schedule_unclaimed(self) -> None:
        """schedule() queues an id for later without a claim (used by the reconciler)."""
        self.assertTrue(await self.queue.schedule("main", 4, self.clock.seconds() + 5))
        self.assertFalse(await self.queue.enqueue("main", 4))
        self.clock.advance(6)
        await self.queue.move_due()
        self.assertEqual(await self.queue.claim("main"), 4)
        self.assertEqual(await self.queue.destinations(), ["main"])
