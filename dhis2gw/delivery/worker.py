"""DestinationWorker: the claim loop and the attempts for one destination.

At most ``max_concurrent`` attempts run at once (a ``DeferredSemaphore``). The loop claims an id
whenever a slot is free and the breaker allows it; when nothing is waiting it sleeps for the
poll interval (50 ms) or until ``wake()`` (called by ingest in the same process), so an idle
gateway picks up a new submission well within 100 ms.

An attempt: take the row in PostgreSQL (token-guarded) → heartbeat the lease while the kind
delivers → record the outcome in PostgreSQL → only then ack/release/delay the id in Redis.
Outcome rules (DESIGN.md §4), written as ``dhis2gw.delivery.recording`` plans them: final
outcomes are recorded; a job-level failure spends a retry and is delayed with backoff (or ends
``failed``); a destination-level failure goes back to ready without spending anything and feeds
the breaker; a suspect failure (500, timeout, lost answer) is first read back and judged by the
destination's health (``dhis2gw.delivery.outcome_rules``).
The heartbeat runs until the outcome is recorded, health check included.
"""
from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer, task
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from dhis2gw.delivery.batching import BatchSettings, attribute, merge, plan
from dhis2gw.delivery.breaker import CircuitBreaker
from dhis2gw.delivery.outcome_rules import READ_BACK_REASONS, DestinationHealth, Verdict, breaker_reason
from dhis2gw.delivery.recording import NullBreaker, plan_recording
from dhis2gw.delivery.retry import RetryPolicy
from dhis2gw.dhis2.outcome import Outcome, OutcomeKind, ReadBack
from dhis2gw.queue.connection import RedisUnavailable
from dhis2gw.queue.feed import SubmissionQueue
from dhis2gw.storage.database import DatabaseUnavailable
from dhis2gw.storage.submissions import SubmissionStore


@dataclass
class DeliveryContext:
    """What a kind's ``deliver`` may use besides the client."""

    clock: IReactorTime
    submission_id: int
    token: str
    store: SubmissionStore

    async def save_job(self, job_id: str) -> bool:
        """Persist the DHIS2 async job id before polling it."""
        return await self.store.save_job(self.submission_id, self.token, job_id)


class DestinationWorker:
    """Delivers the queue of one destination."""

    log = Logger()

    def __init__(self, name: str, clock: IReactorTime, client: Any, breaker: CircuitBreaker,
                 queue: SubmissionQueue, store: SubmissionStore, kinds: dict[str, Any],
                 policy: RetryPolicy, max_concurrent: int, heartbeat_seconds: float = 15.0,
                 save_response: bool = True, poll_interval: float = 0.05,
                 observer: Callable[[str, dict[str, Any], Outcome, str], None] | None = None,
                 batching: BatchSettings | None = None, health: DestinationHealth | None = None) -> None:
        self.name = name
        self.clock = clock
        self.client = client
        self.breaker = breaker
        self.queue = queue
        self.store = store
        self.kinds = kinds
        self.policy = policy
        self.max_concurrent = max_concurrent
        self.semaphore = defer.DeferredSemaphore(max_concurrent)
        self.heartbeat_seconds = heartbeat_seconds
        self.save_response = save_response
        self.poll_interval = poll_interval
        self.observer = observer
        self.batching = batching
        #: What deliveries and health checks showed about this destination (outcome_rules).
        self.health = health if health is not None else DestinationHealth(client.health_check)
        self.in_flight: dict[int, defer.Deferred[None]] = {}
        self.running = False
        self._loop: defer.Deferred[None] | None = None
        self._wake: defer.Deferred[None] | None = None

    # --- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        """Start the claim loop."""
        self.running = True
        self._loop = defer.Deferred.fromCoroutine(self._run())
        self._loop.addErrback(lambda f: self.log.failure("claim loop of {dest} crashed", f, dest=self.name))

    async def stop(self, timeout: float) -> None:
        """Stop claiming; wait up to ``timeout`` for attempts in flight (the rest is left to the reaper)."""
        self.running = False
        self.wake()
        if self._loop is not None:
            await self._loop
        if self.in_flight:
            waiting = defer.DeferredList(list(self.in_flight.values()), consumeErrors=True)
            waiting.addTimeout(timeout, self.clock)
            try:
                await waiting
            except defer.TimeoutError:
                self.log.warn("{n} attempts to {dest} still running at shutdown; their leases will expire",
                              n=len(self.in_flight), dest=self.name)

    def wake(self) -> None:
        """Something was queued (or the worker is stopping): end the idle wait now."""
        if self._wake is not None and not self._wake.called:
            self._wake.callback(None)

    async def _sleep(self, seconds: float) -> None:
        self._wake = d = defer.Deferred[None]()

        def wake_up() -> None:
            if not d.called:
                d.callback(None)

        call = self.clock.callLater(seconds, wake_up)
        await d
        if call.active():
            call.cancel()

    # --- claim loop ----------------------------------------------------------------------
    async def _run(self) -> None:
        while self.running:
            if not self.breaker.allows_claim():
                change = self.breaker.wait_for_change()
                self._wake = change
                await change
                continue
            await self.semaphore.acquire()
            if not self.running:
                self.semaphore.release()
                break
            try:
                ids = await self._claim()
            except RedisUnavailable as e:
                self.semaphore.release()
                self.log.warn("Redis unavailable while claiming for {dest}: {error}", dest=self.name, error=e)
                await self._sleep(1.0)
                continue
            except Exception:  # noqa: BLE001 - keep the loop alive
                self.semaphore.release()
                self.log.failure("claim failed for {dest}", dest=self.name)
                await self._sleep(1.0)
                continue
            if not ids:
                self.semaphore.release()
                await self._sleep(self.poll_interval)
                continue
            self.breaker.claimed()
            if len(ids) == 1:
                d = defer.Deferred.fromCoroutine(self._attempt(ids[0]))
            else:
                d = defer.Deferred.fromCoroutine(self._attempt_batch(ids))
            for sid in ids:
                self.in_flight[sid] = d
            d.addErrback(self._attempt_crashed, ids)
            d.addBoth(self._attempt_done, ids)

    def _attempt_crashed(self, failure: Failure, ids: list[int]) -> None:
        self.log.failure("attempt {ids} crashed", failure, ids=ids)

    async def _claim(self) -> list[int]:
        """One id, or with batching on, up to ``max_submissions`` (lingering briefly for more)."""
        if self.batching is None:
            sid = await self.queue.claim(self.name)
            return [] if sid is None else [sid]
        cap = self.batching.max_submissions
        ids = await self.queue.claim_many(self.name, cap)
        if ids and len(ids) < cap and self.batching.linger > 0:
            await self._sleep(self.batching.linger)
            ids += await self.queue.claim_many(self.name, cap - len(ids))
        return ids

    def _attempt_done(self, _: Any, ids: list[int]) -> None:
        for sid in ids:
            self.in_flight.pop(sid, None)
        self.semaphore.release()

    # --- one attempt -----------------------------------------------------------------------
    async def _attempt(self, sid: int) -> None:
        token = secrets.token_hex(8)
        try:
            row = await self.store.start_attempt(sid, token, self.name)
        except DatabaseUnavailable as e:
            self.log.warn("database unavailable taking submission {sid}: {error}", sid=sid, error=e)
            await self._redis_quietly(self.queue.release(self.name, sid))
            self.breaker.record_neutral()
            await task.deferLater(self.clock, 1.0, lambda: None)
            return
        if row is None:  # final already (e.g. crash between commit and ack): just forget the id
            await self._redis_quietly(self.queue.ack(self.name, sid))
            self.breaker.record_neutral()
            return
        heartbeat = task.LoopingCall(self._heartbeat, [sid])
        heartbeat.clock = self.clock
        heartbeat.start(self.heartbeat_seconds, now=False)
        try:
            seq = self.health.start()
            outcome, duration = await self._deliver_one(row, token)
            await self._settle(row, token, outcome, duration, seq)
        finally:
            heartbeat.stop()

    async def _deliver_one(self, row: dict[str, Any], token: str) -> tuple[Outcome, float]:
        """Deliver one row with its kind; never raises (a bug becomes a job-level failure)."""
        kind = self.kinds.get(row["kind"])
        started = self.clock.seconds()
        try:
            if kind is None:
                outcome = Outcome(OutcomeKind.REJECTED, reason="unknown_kind",
                                  message=f"no submission kind named {row['kind']!r} is loaded")
            else:
                outcome = await kind.deliver(self.client, row,
                                             DeliveryContext(self.clock, row["id"], token, self.store))
        except Exception as e:  # noqa: BLE001 - a bug in a kind spends a retry, never the process
            self.log.failure("delivering submission {sid} failed", sid=row["id"])
            outcome = Outcome(OutcomeKind.RETRY, reason="internal_error", message=f"{type(e).__name__}: {e}")
        duration = outcome.duration if outcome.duration is not None else self.clock.seconds() - started
        return outcome, duration

    async def _attempt_batch(self, ids: list[int]) -> None:
        """Several claimed ids: batch the aggregate ones (dhis2gw.delivery.batching), the rest alone."""
        assert self.batching is not None
        token = secrets.token_hex(8)
        try:
            rows = await self.store.start_attempts(ids, token, self.name)
        except DatabaseUnavailable as e:
            self.log.warn("database unavailable taking a batch: {error}", error=e)
            for sid in ids:
                await self._redis_quietly(self.queue.release(self.name, sid))
            self.breaker.record_neutral()
            await task.deferLater(self.clock, 1.0, lambda: None)
            return
        taken = {r["id"] for r in rows}
        for sid in ids:
            if sid not in taken:
                await self._redis_quietly(self.queue.ack(self.name, sid))
        heartbeat = task.LoopingCall(self._heartbeat, sorted(taken))
        heartbeat.clock = self.clock
        heartbeat.start(self.heartbeat_seconds, now=False)
        try:
            for chunk in self._chunks(rows):
                if len(chunk) == 1:
                    seq = self.health.start()
                    outcome, duration = await self._deliver_one(chunk[0], token)
                    await self._settle(chunk[0], token, outcome, duration, seq)
                    continue
                batch = merge(chunk)
                params = dict(chunk[0].get("import_params") or {})
                params.setdefault("importStrategy", "CREATE_AND_UPDATE")
                started = self.clock.seconds()
                seq = self.health.start()
                outcome = await self.client.post_data_value_set(batch.payload, params)
                duration = outcome.duration if outcome.duration is not None else self.clock.seconds() - started
                if outcome.kind is OutcomeKind.SUSPECT:
                    # Each row is read back and judged on its own (one health check serves all).
                    for i, row in enumerate(chunk):
                        await self._settle(row, token, outcome, duration, seq, breaker=(i == 0),
                                           detail=f"batch of {batch.size}")
                    continue
                self.health.observe(seq, outcome)
                for i, (row, mine) in enumerate(zip(chunk, attribute(batch, outcome))):
                    if mine is None:  # cannot be attributed: deliver this one alone
                        alone_seq = self.health.start()
                        alone, alone_duration = await self._deliver_one(row, token)
                        await self._settle(row, token, alone, alone_duration, alone_seq)
                    else:
                        await self._record(row, token, mine, duration, breaker=(i == 0),
                                           detail=f"batch of {batch.size}")
        finally:
            heartbeat.stop()

    def _chunks(self, rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
        """The requests for these rows, in sending order (``dhis2gw.delivery.batching.plan``)."""
        assert self.batching is not None
        return plan(rows, self.batching)

    async def _heartbeat(self, ids: list[int]) -> None:
        try:
            if len(ids) == 1:
                await self.queue.heartbeat(self.name, ids[0])
            else:
                await self.queue.heartbeat_many(self.name, ids)
        except RedisUnavailable:
            pass  # the lease may lapse; the token guard keeps the outcome safe

    async def _redis_quietly(self, d: Any) -> None:
        try:
            await d
        except RedisUnavailable as e:
            # The id stays where it is; the reaper or reconciler will put it right.
            self.log.warn("Redis unavailable after commit ({error}); the reaper will recover it", error=e)

    # --- suspect failures (dhis2gw.delivery.outcome_rules) ------------------------------------
    async def _settle(self, row: dict[str, Any], token: str, outcome: Outcome, duration: float, seq: int,
                      breaker: bool = True, detail: str | None = None) -> None:
        """Record ``outcome`` of the attempt numbered ``seq``; a suspect one is read back and judged first."""
        if outcome.kind is not OutcomeKind.SUSPECT:
            self.health.observe(seq, outcome)
            await self._record(row, token, outcome, duration, breaker=breaker, detail=detail)
            return
        brk = self.breaker if breaker else NullBreaker()
        read = await self._read_back(row) if outcome.reason in READ_BACK_REASONS else None
        if read is not None and read.state == "confirmed":
            brk.record_success()
            confirmed = Outcome(OutcomeKind.DELIVERED, "confirmed_by_read_back", http_status=None,
                                message=read.message or "every value is in DHIS2 as sent (read back)")
            await self._record(row, token, confirmed, duration, breaker=False, event="confirmed_by_read_back",
                               detail=f"{outcome.reason}; {confirmed.message}")
            return
        check: Outcome | None = None
        if read is not None and read.state == "failed":
            verdict = Verdict.REQUEUE  # the read-back was this attempt's health check, and it failed
            check = read.outcome
        else:
            verdict, check = await self.health.judge(seq)
        why = f"{outcome.reason}: {outcome.message}" if outcome.message else str(outcome.reason)
        if verdict is Verdict.SPEND_RETRY:
            brk.record_success()
            note = "DHIS2 is healthy for other work: this payload is suspected"
            await self._record(row, token, dataclasses.replace(outcome, kind=OutcomeKind.RETRY), duration,
                               breaker=False, detail="; ".join(x for x in (detail, f"{outcome.reason}; {note}") if x))
            return
        brk.record_failure(breaker_reason(outcome))
        seen = f"; health check: {check.reason or check.kind.value}" if check is not None else ""
        await self._record(row, token, outcome, duration, breaker=False, event="destination_suspect",
                           detail=f"{breaker_reason(outcome)}{seen}; no retry counted ({why})"[:1000])

    async def _read_back(self, row: dict[str, Any]) -> ReadBack | None:
        """Ask DHIS2 whether the submission is there (the kind's ``read_back``); None when it cannot."""
        reader = getattr(self.kinds.get(row["kind"]), "read_back", None)
        if reader is None:
            return None
        seq = self.health.start()
        try:
            read: ReadBack | None = await reader(self.client, row)
        except Exception:  # noqa: BLE001 - a read-back bug must not lose the attempt
            self.log.failure("reading back submission {sid} failed", sid=row["id"])
            return None
        if read is not None and read.answered:
            self.health.healthy(seq)
        return read

    async def _record(self, row: dict[str, Any], token: str, outcome: Outcome, duration: float,
                      breaker: bool = True, detail: str | None = None, event: str | None = None) -> None:
        """Write ``outcome`` (``dhis2gw.delivery.recording``); move the id in Redis only once it is written."""
        sid = row["id"]
        plan = plan_recording(row, outcome, destination=self.name, duration=duration, policy=self.policy,
                              now=self.clock.seconds(), save_response=self.save_response, detail=detail, event=event)
        # In a batch, one request is one observation for the breaker.
        brk = self.breaker if breaker else NullBreaker()
        if plan.breaker_first:
            plan.tell(brk)
        try:
            ok = await self.store.record(sid, token, plan.status, **plan.fields)
        except DatabaseUnavailable as e:
            # Not recorded: leave the id claimed; its lease expires and it is attempted again.
            self.log.warn("database unavailable recording submission {sid}: {error}", sid=sid, error=e)
            return
        if not plan.breaker_first:
            plan.tell(brk)
        if not ok:
            self.log.warn("submission {sid}: lease lost to another attempt; outcome not recorded", sid=sid)
            return
        await self._redis_quietly(plan.move(self.queue, self.name, sid))
        if self.observer is not None:
            self.observer(self.name, row, outcome, "recorded")
