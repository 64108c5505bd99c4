"""``CallbackCreator``: a final outcome becomes a callback submission in the ``_callbacks`` lane.

The callback is itself a submission (kind ``callback``) with the idempotency key
``callback:<uid>:<attempts>``, created just after the outcome is committed (the outcome observer)
or, when a crash fell exactly between the two, by the sweep. The key makes the two paths create
it once between them, in any process.
"""
from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.logger import Logger

from dhis2gw.callbacks.settings import CallbackSettings
from dhis2gw.callbacks.submitters import CallbackSubmitters
from dhis2gw.dhis2.outcome import Outcome, OutcomeKind
from dhis2gw.dhis2.uids import generate_uid
from dhis2gw.queue.connection import RedisUnavailable
from dhis2gw.storage.statuses import FAILED, FINAL_STATES, FINAL_STATUS
from dhis2gw.storage.submissions import NewSubmission, SubmissionStore, follow_up_key
from dhis2gw.wiring.context import QueueOperations

log = Logger(namespace="dhis2gw.plugins.callback")

#: The queue lane of callbacks: its own worker and semaphore, never a DHIS2 destination's.
CALLBACK_LANE = "_callbacks"
#: Idempotency keys of callbacks: ``callback:<uid>:<attempts>``.
KEY_PREFIX = "callback:"
#: The sweep looks at submissions created this long ago at most, finished at least this long ago.
SWEEP_WINDOW = 24 * 3600.0
SWEEP_GRACE = 60.0
SWEEP_PAGE = 500
#: The outcome a final status stands for when the sweep recovers a missed callback.
_STATUS_KINDS = {**{status: kind for kind, status in FINAL_STATUS.items()}, FAILED: OutcomeKind.RETRY}
_SUMMARY_FIELDS = ("id", "uid", "kind", "destination", "status", "attempts", "http_status", "value_count",
                   "import_count", "error", "created_at", "finished_at")


def body_url(row: dict[str, Any]) -> str | None:
    """The ``callback_url`` of a submission's body as received, or None."""
    payload = row.get("payload")
    url = payload.get("callback_url") if isinstance(payload, dict) else None
    return url if isinstance(url, str) and url else None


class CallbackCreator:
    """Creates (and pushes) the callback submission of each final outcome that should have one."""

    def __init__(self, kind: str, submissions: SubmissionStore, queue: QueueOperations,
                 settings: CallbackSettings, submitters: CallbackSubmitters) -> None:
        self.kind = kind
        self.submissions = submissions
        self.queue = queue
        self.settings = settings
        self.submitters = submitters
        #: Callbacks being created (observer) or swept; the service waits for them on stop.
        self.pending: set[defer.Deferred[Any]] = set()

    def track(self, d: defer.Deferred[Any]) -> defer.Deferred[Any]:
        """Keep ``d`` in ``pending`` until it fires (failures are logged by whoever made it)."""
        self.pending.add(d)

        def forget(result: Any) -> Any:
            self.pending.discard(d)
            return result

        d.addBoth(forget)
        return d

    def observe(self, destination: str, row: dict[str, Any], outcome: Outcome, event: str) -> None:
        """Outcome observer: queue a callback when ``row`` may have become final (never blocks)."""
        if row.get("kind") == self.kind or outcome.kind not in (OutcomeKind.DELIVERED, OutcomeKind.PARTIAL,
                                                                 OutcomeKind.REJECTED, OutcomeKind.RETRY):
            return
        if not body_url(row) and not (self.settings.submitters and row.get("submitter_id") is not None):
            return
        d = defer.Deferred.fromCoroutine(self.queue_callback(row, outcome))
        d.addErrback(lambda f: log.failure("callback for submission {sid} not queued", f, sid=row.get("id")))
        self.track(d)

    async def queue_callback(self, row: dict[str, Any], outcome: Outcome) -> bool:
        """Create (and push) the callback of ``row`` if it is final; True when a new one was created."""
        sid = row["id"]
        url = body_url(row)
        if url is not None:
            problem = self.settings.url_problem(url)
            if problem is None and not await self.submitters.may_name_url(row.get("submitter_id")):
                problem = "the submitter may not name a callback_url"
            if problem:
                log.warn("submission {sid}: callback_url refused ({problem})", sid=sid, problem=problem)
                return False
        else:
            url = (await self.submitters.entry(row.get("submitter_id")))[1].get("url")
            if not url or self.settings.url_problem(url, from_body=False):
                return False
        current = await self.submissions.get(sid, with_payloads=False)
        if current is None or current["status"] not in FINAL_STATES:
            return False  # a retry is scheduled: the callback waits for the final outcome
        document = {
            "event": "submission.final",
            "submission": {key: (value.isoformat() if hasattr(value, "isoformat") else value)
                           for key, value in current.items() if key in _SUMMARY_FIELDS},
            "status_url": f"/api/v2/submissions/{sid}",
            "outcome": {"kind": outcome.kind.value, "reason": outcome.reason, "http_status": outcome.http_status,
                        "dhis2_status": outcome.dhis2_status, "conflicts": len(outcome.conflicts)
                        + len(outcome.error_reports)},
        }
        created = await self.submissions.create(NewSubmission(
            uid=generate_uid(), kind=self.kind, destination=CALLBACK_LANE,
            submitter_id=row.get("submitter_id"), endpoint=f"/api/v2/submissions/{sid}",
            payload={"callback_url": url, "for_submission": sid, "for_uid": current["uid"],
                     "url_from": "body" if body_url(row) is not None else "callbacks_file"},
            dhis2_payload=document, import_params={}, value_count=0,
            idempotency_key=follow_up_key(KEY_PREFIX, current["uid"], current["attempts"])))
        if created.existing:
            return False
        try:
            await self.queue.enqueue(CALLBACK_LANE, created.row["id"], timeout=2)
        except RedisUnavailable as e:
            log.warn("callback {cid} recorded but not pushed ({error}); the reconciler will queue it",
                     cid=created.row["id"], error=e)
            return True
        self.queue.wake(CALLBACK_LANE)
        return True

    async def sweep(self, window_seconds: float = SWEEP_WINDOW, grace_seconds: float = SWEEP_GRACE) -> int:
        """Queue the missing callback of every final submission that finished more than
        ``grace_seconds`` ago (the normal path has had its chance) and was created within
        ``window_seconds``; returns how many were queued."""
        submitter_ids = await self.submitters.ids_with_url()
        queued, after = 0, 0
        while True:  # in pages by id, so rows that never get a callback (refused URL) cannot starve the rest
            rows = await self.submissions.finished_without_follow_up(
                self.kind, KEY_PREFIX, payload_field="callback_url", submitter_ids=submitter_ids,
                window_seconds=window_seconds, grace_seconds=grace_seconds, after_id=after, limit=SWEEP_PAGE)
            for row in rows:
                outcome = Outcome(_STATUS_KINDS[row["status"]], reason="recovered", http_status=row["http_status"])
                queued += await self.queue_callback(row, outcome)
            if len(rows) < SWEEP_PAGE:
                break
            after = rows[-1]["id"]
        if queued:
            log.warn("callback sweep: queued {n} callback(s) missed by an interrupted gateway", n=queued)
        return queued
