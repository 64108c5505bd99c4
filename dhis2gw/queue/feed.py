"""``SubmissionQueue``: the Redis feed of submission ids (DESIGN.md §4).

PostgreSQL holds every submission; this class only moves ids between the Redis structures
described in ``dhis2gw.queue.scripts``. Every method is one atomic script or command with a
timeout, and raises ``RedisUnavailable`` when Redis does not answer: callers decide what that
means (ingest keeps the row ``queued`` for the reconciler; the dispatcher waits and retries).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from twisted.internet.interfaces import IReactorTime

from dhis2gw.queue import scripts
from dhis2gw.queue.connection import RedisConnections


@dataclass(frozen=True)
class QueueDepth:
    """How much is waiting for one destination."""

    ready: int
    processing: int
    delayed: int
    paused: bool


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class SubmissionQueue:
    """Atomic queue operations over one Redis, under one key prefix."""

    def __init__(self, redis: RedisConnections, clock: IReactorTime, prefix: str,
                 lease_seconds: float = 60.0) -> None:
        self.redis = redis
        self.clock = clock
        self.prefix = prefix
        self.lease_seconds = lease_seconds
        # The keys every destination shares (see dhis2gw.queue.scripts).
        self.leases_key, self.delayed_key, self.members_key, self.dests_key = (
            f"{prefix}:{name}" for name in ("leases", "delayed", "members", "dests"))

    # --- keys of one destination -------------------------------------------------------
    def ready_key(self, dest: str) -> str:
        return f"{self.prefix}:ready:{dest}"

    def processing_key(self, dest: str) -> str:
        return f"{self.prefix}:processing:{dest}"

    def paused_key(self, dest: str) -> str:
        return f"{self.prefix}:paused:{dest}"

    def _now_ms(self) -> int:
        return int(self.clock.seconds() * 1000)

    @staticmethod
    def member(dest: str, submission_id: int | str) -> str:
        return f"{dest}|{submission_id}"

    # --- operations --------------------------------------------------------------------
    async def enqueue(self, dest: str, submission_id: int, timeout: float | None = None) -> bool:
        """Push an id to ``dest``'s ready list; False when it was already queued."""
        result = await self.redis.eval(
            scripts.ENQUEUE, [self.ready_key(dest), self.members_key, self.dests_key],
            [self.member(dest, submission_id), str(submission_id), dest], timeout=timeout)
        return bool(result)

    async def enqueue_many(self, dest: str, submission_ids: list[int], timeout: float | None = None) -> int:
        """Push many ids to ``dest``'s ready list in one script; return how many were new."""
        if not submission_ids:
            return 0
        result = await self.redis.eval(
            scripts.ENQUEUE_MANY, [self.ready_key(dest), self.members_key, self.dests_key],
            [dest, *(str(i) for i in submission_ids)], timeout=timeout)
        return int(result)

    async def schedule(self, dest: str, submission_id: int, due: float) -> bool:
        """Queue an id (not currently claimed) to become ready at ``due`` (clock seconds)."""
        result = await self.redis.eval(
            scripts.SCHEDULE, [self.delayed_key, self.members_key, self.dests_key],
            [self.member(dest, submission_id), str(int(due * 1000)), dest])
        return bool(result)

    async def claim(self, dest: str) -> int | None:
        """Move the oldest ready id to processing with a lease; None when paused or empty."""
        lease_until = self._now_ms() + int(self.lease_seconds * 1000)
        result = await self.redis.eval(
            scripts.CLAIM,
            [self.ready_key(dest), self.processing_key(dest), self.leases_key, self.paused_key(dest)],
            [dest, str(lease_until)])
        if result is None or result is False:
            return None
        return int(_text(result))

    async def claim_many(self, dest: str, count: int) -> list[int]:
        """Claim up to ``count`` ready ids at once (each with its lease); empty when paused or none."""
        if count <= 0:
            return []
        lease_until = self._now_ms() + int(self.lease_seconds * 1000)
        result = await self.redis.eval(
            scripts.CLAIM_MANY,
            [self.ready_key(dest), self.processing_key(dest), self.leases_key, self.paused_key(dest)],
            [dest, str(lease_until), str(count)])
        return [int(_text(x)) for x in (result or [])]

    async def heartbeat_many(self, dest: str, submission_ids: list[int]) -> int:
        """Extend the leases of several claimed ids; return how many still existed."""
        lease_until = self._now_ms() + int(self.lease_seconds * 1000)
        return int(await self.redis.eval(scripts.HEARTBEAT_MANY, [self.leases_key],
                                         [dest, str(lease_until), *(str(i) for i in submission_ids)]))

    async def heartbeat(self, dest: str, submission_id: int) -> bool:
        """Extend the lease of a claimed id; False if the lease had already been reaped."""
        lease_until = self._now_ms() + int(self.lease_seconds * 1000)
        result = await self.redis.eval(scripts.HEARTBEAT, [self.leases_key],
                                       [self.member(dest, submission_id), str(lease_until)])
        return bool(result)

    async def ack(self, dest: str, submission_id: int) -> None:
        """Forget a claimed id (its outcome is committed in PostgreSQL)."""
        await self.redis.eval(scripts.ACK, [self.processing_key(dest), self.leases_key, self.members_key],
                              [str(submission_id), self.member(dest, submission_id)])

    async def release(self, dest: str, submission_id: int) -> None:
        """Give a claimed id back to the front of ready (nothing was spent on it)."""
        await self.redis.eval(scripts.RELEASE, [self.processing_key(dest), self.leases_key, self.ready_key(dest)],
                              [str(submission_id), self.member(dest, submission_id)])

    async def delay(self, dest: str, submission_id: int, due: float) -> None:
        """Move a claimed id to the delayed set until ``due`` (clock seconds)."""
        await self.redis.eval(scripts.DELAY, [self.processing_key(dest), self.leases_key, self.delayed_key],
                              [str(submission_id), self.member(dest, submission_id), str(int(due * 1000))])

    async def move_due(self, limit: int = 1000) -> int:
        """Move delayed ids whose time has come to their ready lists."""
        return int(await self.redis.eval(scripts.MOVE_DUE, [self.delayed_key],
                                         [self.prefix, str(self._now_ms()), str(limit)]))

    async def reap(self, limit: int = 1000) -> list[tuple[str, int]]:
        """Return expired-lease and lease-less processing ids to ready; list what moved."""
        flat = await self.redis.eval(scripts.REAP, [self.leases_key, self.dests_key],
                                     [self.prefix, str(self._now_ms()), str(limit)])
        items = [_text(x) for x in (flat or [])]
        return [(items[i], int(items[i + 1])) for i in range(0, len(items), 2)]

    async def known(self, members: Iterable[tuple[str, int]]) -> list[bool]:
        """For each (dest, id): is it anywhere in the queue?"""
        args = [self.member(d, i) for d, i in members]
        if not args:
            return []
        result = await self.redis.eval(scripts.KNOWN, [self.members_key], args)
        return [bool(int(x)) for x in result]

    async def pause(self, dest: str) -> None:
        """Stop claims for ``dest`` (operators' hand brake)."""
        await self.redis.call("SET", self.paused_key(dest), "1")
        await self.redis.call("SADD", self.dests_key, dest)

    async def resume(self, dest: str) -> None:
        """Allow claims for ``dest`` again."""
        await self.redis.call("DEL", self.paused_key(dest))

    async def is_paused(self, dest: str) -> bool:
        """True while an operator has paused ``dest``."""
        return bool(int(await self.redis.call("EXISTS", self.paused_key(dest))))

    async def depth(self, dest: str) -> QueueDepth:
        """Counts for ``dest`` (delayed counted by scanning the delayed set's members)."""
        ready = int(await self.redis.call("LLEN", self.ready_key(dest)))
        processing = int(await self.redis.call("LLEN", self.processing_key(dest)))
        delayed = int(await self.redis.eval(
            "local n=0 for _,m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do "
            "if string.sub(m, 1, #ARGV[1]+1) == ARGV[1] .. '|' then n=n+1 end end return n",
            [self.delayed_key], [dest]))
        return QueueDepth(ready, processing, delayed, await self.is_paused(dest))

    async def destinations(self) -> list[str]:
        """Every destination the queue has seen."""
        return sorted(_text(x) for x in (await self.redis.call("SMEMBERS", self.dests_key) or []))
