"""Requeue: move final submissions back to ``queued`` and push their ids, in chunks.

The engine calls are ``SubmissionStore.requeue(ids, actor, force)`` (one transaction per chunk:
rows + ``requeued`` events) and ``SubmissionQueue.enqueue_many`` for the ids that moved. Rows
are committed as ``queued`` before their ids are pushed, so a crash or a Redis outage between
the two leaves rows the reconciler pushes later; the queue's members set makes each id land in
a ready list at most once, whoever pushes it.

Small selections run inside the request. Large ones (more than ``sync_limit`` rows) run as a
job: a row in ``requeue_jobs`` whose counters are updated after every chunk, so progress is
readable from any gateway process. Jobs of one process run one at a time (a
``DeferredSemaphore``); every chunk awaits PostgreSQL and Redis, so the reactor keeps serving
requests between chunks.
"""
from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from twisted.application import service
from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from dhis2gw.queue.connection import RedisUnavailable
from dhis2gw.queue.feed import SubmissionQueue
from dhis2gw.storage.logs import LogFilter, LogStore
from dhis2gw.storage.submissions import SubmissionStore


@dataclass
class RequeueCounts:
    """What a requeue did so far."""

    scanned: int = 0
    requeued: int = 0
    enqueued: int = 0
    not_pushed: int = 0  # moved in PostgreSQL but Redis did not answer: the reconciler pushes them
    moved_ids: list[int] = field(default_factory=list)

    def as_json(self) -> dict[str, int]:
        """The counters as the API shows them."""
        return {"scanned": self.scanned, "requeued": self.requeued, "enqueued": self.enqueued,
                "skipped": self.scanned - self.requeued, "not_pushed": self.not_pushed}


class RequeueService(service.Service):
    """Runs requeues: inline for small selections, as jobs for large ones."""

    log = Logger()
    name = "requeue-jobs"

    def __init__(self, clock: IReactorTime, logs: LogStore, store: SubmissionStore, queue: SubmissionQueue,
                 wake: Callable[[str], None] | None = None, chunk: int = 1000, sync_limit: int = 1000) -> None:
        self.clock = clock
        self.logs = logs
        self.store = store
        self.queue = queue
        self.wake = wake
        self.chunk = chunk
        self.sync_limit = sync_limit
        self.lock = defer.DeferredSemaphore(1)
        self.running_jobs: dict[str, defer.Deferred[None]] = {}

    # --- one chunk ------------------------------------------------------------------------
    async def requeue_chunk(self, ids: Sequence[int], actor: str, force: bool, counts: RequeueCounts,
                            keep_ids: bool = False) -> None:
        """Requeue one chunk of ids and push those that moved."""
        if not ids:
            return
        moved = await self.store.requeue(list(ids), actor, force)
        counts.scanned += len(ids)
        counts.requeued += len(moved)
        by_dest: dict[str, list[int]] = {}
        for row in moved:
            by_dest.setdefault(row["destination"], []).append(row["id"])
            if keep_ids:
                counts.moved_ids.append(row["id"])
        for dest, dest_ids in by_dest.items():
            try:
                counts.enqueued += await self.queue.enqueue_many(dest, dest_ids)
            except RedisUnavailable as e:
                counts.not_pushed += len(dest_ids)
                self.log.warn("Requeued {n} submissions for {dest} but Redis did not answer ({error});"
                              " the reconciler will queue them", n=len(dest_ids), dest=dest, error=e)
                continue
            if self.wake is not None:
                self.wake(dest)

    async def requeue_ids(self, ids: Sequence[int], actor: str, force: bool) -> RequeueCounts:
        """Requeue ``ids`` now (chunked); returns the counts and the ids that moved."""
        counts = RequeueCounts()
        unique = list(dict.fromkeys(ids))
        for start in range(0, len(unique), self.chunk):
            await self.requeue_chunk(unique[start:start + self.chunk], actor, force, counts, keep_ids=True)
        return counts

    async def requeue_filter(self, f: LogFilter, actor: str, force: bool,
                             progress: Callable[[RequeueCounts], Any] | None = None) -> RequeueCounts:
        """Requeue every row matching ``f`` (walked in id order, chunk by chunk)."""
        counts = RequeueCounts()
        after = 0
        while True:
            ids: list[int] = await self.logs.ids_after(f, after, self.chunk)
            if not ids:
                return counts
            after = ids[-1]
            await self.requeue_chunk(ids, actor, force, counts)
            if progress is not None:
                await progress(counts)

    # --- jobs --------------------------------------------------------------------------------
    async def start_job(self, actor: str, force: bool, matched: int, *, ids: Sequence[int] | None = None,
                        f: LogFilter | None = None) -> str:
        """Record and start a background job for ids or a filter; return its id."""
        job_id = secrets.token_hex(8)
        selection: dict[str, Any] = {"ids_count": len(ids)} if ids is not None else {
            "filter": (f or LogFilter()).to_json()}
        await self.logs.create_job(job_id, actor, selection, force, matched)
        d = defer.Deferred.fromCoroutine(self._run_job(job_id, actor, force, ids, f))
        self.running_jobs[job_id] = d
        d.addBoth(self._job_done, job_id)
        return job_id

    def _job_done(self, result: Any, job_id: str) -> None:
        self.running_jobs.pop(job_id, None)
        if isinstance(result, Failure) and not result.check(defer.CancelledError):
            self.log.failure("requeue job {job} crashed", result, job=job_id)

    async def _run_job(self, job_id: str, actor: str, force: bool, ids: Sequence[int] | None,
                       f: LogFilter | None) -> None:
        await self.lock.acquire()
        counts = RequeueCounts()
        try:
            async def progress(c: RequeueCounts) -> None:
                await self.logs.update_job(job_id, scanned=c.scanned, requeued=c.requeued, enqueued=c.enqueued)

            if ids is not None:
                unique = list(dict.fromkeys(ids))
                for start in range(0, len(unique), self.chunk):
                    await self.requeue_chunk(unique[start:start + self.chunk], actor, force, counts)
                    await progress(counts)
            else:
                counts = await self.requeue_filter(f or LogFilter(), actor, force, progress)
            await self.logs.update_job(job_id, scanned=counts.scanned, requeued=counts.requeued,
                                       enqueued=counts.enqueued, status="done",
                                       error=(f"{counts.not_pushed} rows left for the reconciler to push"
                                              if counts.not_pushed else None))
            self.log.info("Requeue job {job} by {actor}: {requeued} of {scanned} requeued", job=job_id,
                          actor=actor, requeued=counts.requeued, scanned=counts.scanned)
        except defer.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - the job's row says what happened
            self.log.failure("requeue job {job} failed", job=job_id)
            try:
                await self.logs.update_job(job_id, scanned=counts.scanned, requeued=counts.requeued,
                                           enqueued=counts.enqueued, status="failed",
                                           error=f"{type(e).__name__}: {e}"[:500])
            except Exception:  # noqa: BLE001 - the database may be what failed
                pass
        finally:
            self.lock.release()

    def stopService(self) -> defer.Deferred[None]:  # noqa: N802
        super().stopService()
        return defer.Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        running = list(self.running_jobs.items())
        for _, d in running:
            d.cancel()
        if running:
            await defer.DeferredList([d for _, d in running], consumeErrors=True)
            try:
                await self.logs.interrupt_running_jobs([job for job, _ in running])
            except Exception:  # noqa: BLE001 - shutting down; the row stays 'running'
                self.log.warn("could not mark {n} requeue jobs interrupted", n=len(running))
