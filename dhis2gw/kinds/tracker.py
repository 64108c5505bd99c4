"""The tracker kind: tracked entities, enrollments, events and relationships for ``POST /api/tracker``.

Ingest (``POST /api/v2/tracker``, schema and import options in :mod:`dhis2gw.kinds.tracker_schema`):
every object without a UID gets one, references are resolved (:mod:`dhis2gw.kinds.tracker_uids`),
and the prepared payload is stored in ``dhis2_payload`` by the shared ingest path before the
first attempt. The 202 answer carries ``uids`` ({collection: {reference or JSON path: UID}}) and
``counts``; ``value_count`` is the number of objects.

Delivery: ``POST /api/tracker?async=false&importStrategy=CREATE_AND_UPDATE`` (the submitter's
explicit options win) with ``reportMode=WARNINGS`` so warnings are kept. A payload larger than
``delivery.tracker_async_threshold_bytes`` goes ``async=true``: the job id is persisted with
``context.save_job`` BEFORE polling ``/api/tracker/jobs/{id}`` and its ``/report`` on the injected
clock (the worker heartbeats the lease meanwhile). An attempt that finds ``dhis2_job_id`` set (a
restart, a lost lease) resumes polling that job instead of posting again; if DHIS2 does not know
the job (restarted: jobs live in memory) for ``unknown_job_grace`` seconds, the payload is posted
again — safe, because the UIDs are fixed and the strategy is CREATE_AND_UPDATE.

Interpretation is the client's (dhis2gw/dhis2/tracker_reports.py): OK → delivered; WARNING →
delivered, or partial when objects were ignored; ERROR with objects stored (atomicMode OBJECT) →
partial; ERROR with nothing stored → rejected (only "already exists" → delivered, only "parent
missing" → retry). Stats go to ``import_count`` and every error/warning report
(code, message, trackerType, uid) to ``conflicts`` (the worker's ``_record``).
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any

from twisted.internet.task import deferLater
from twisted.logger import Logger
from zope.interface import implementer

from dhis2gw.dhis2.outcome import Outcome, OutcomeKind
from dhis2gw.interfaces import IngestDoc, IngestRequest, ISubmissionKind, KindError, Prepared
from dhis2gw.kinds.read_back import read_back_tracker
from dhis2gw.kinds.tracker_schema import (
    ACCEPTED_SCHEMA,
    QUERY_PARAMETERS,
    REQUEST_SCHEMA,
    SOURCE_ID_ATTRIBUTE,
    import_options,
)
from dhis2gw.kinds.tracker_uids import Slot, UidMap, collect, prepare_uids, render_relationship_items, uid_listing


@implementer(ISubmissionKind)
class TrackerKind:
    """Tracker payloads with gateway-assigned UIDs (see module docstring)."""

    name = "tracker"
    endpoint = "/tracker"
    request_schema = REQUEST_SCHEMA
    ingest_doc = IngestDoc(
        summary="Submit tracker data (tracked entities, enrollments, events, relationships)",
        description="Flat or nested DHIS2 tracker payload; import options as query parameters. "
                    "Objects without a UID get one now; `uids` maps each object's `reference` "
                    "(or its JSON path) to its UID.",
        query=QUERY_PARAMETERS, response_schema=ACCEPTED_SCHEMA,
        responses={400: "invalid body or import options", 422: "duplicate or unresolvable references"})
    log = Logger()

    def __init__(self, uid_map: UidMap | None = None, async_threshold_bytes: int = 1024 * 1024, *,
                 poll_interval: float = 0.5, poll_max_interval: float = 10.0, poll_timeout: float = 3600.0,
                 unknown_job_grace: float = 60.0, report_mode: str = "WARNINGS",
                 poll_failures: int = 5) -> None:
        """``poll_timeout``: an attempt polls at most this long, then spends a retry (the job id is kept,
        so the next attempt polls on); ``unknown_job_grace``: how long DHIS2 may say it does not know
        the job before the payload is posted again; ``poll_failures``: polls in a row that may fail
        (answer lost, timeout, 500) before the attempt ends with that failure."""
        self.uid_map = uid_map
        self.async_threshold_bytes = async_threshold_bytes
        self.poll_interval = poll_interval
        self.poll_max_interval = poll_max_interval
        self.poll_timeout = poll_timeout
        self.unknown_job_grace = unknown_job_grace
        self.report_mode = report_mode
        self.poll_failures = poll_failures

    # --- ingest ------------------------------------------------------------------------
    async def repeat_answer(self, row: dict[str, Any], query: dict[str, str]) -> dict[str, Any]:
        """An Idempotency-Key repeat: ``prepare`` ran again and drew fresh UIDs for objects without a
        reference; answer the UIDs and payload of the submission actually stored."""
        if not row.get("dhis2_payload"):
            return {}
        return {"uids": uid_listing(row["payload"], row["dhis2_payload"], query.get(SOURCE_ID_ATTRIBUTE)),
                "payload": row["dhis2_payload"]}

    async def prepare(self, request: IngestRequest) -> Prepared:
        """Validate options, assign UIDs, resolve references; KindError lists every problem."""
        params, gateway_options = import_options(request.query)
        body = request.body
        if not any(body.get(key) for key in ("trackedEntities", "enrollments", "events", "relationships")):
            raise KindError(400, "empty_payload", "the payload holds no tracked entities, enrollments, events "
                                                  "or relationships")
        source_system = ""
        if self.uid_map is not None:
            source_system = await self.uid_map.source_system(request.submitter_id, request.source_name)
        prepared = await prepare_uids(body, source_system=source_system, uid_map=self.uid_map,
                                      strategy=params.get("importStrategy", "CREATE_AND_UPDATE"),
                                      source_attribute=gateway_options.get(SOURCE_ID_ATTRIBUTE))
        if prepared.errors:
            raise KindError(422, "unresolved_references", "some objects or references cannot be prepared",
                            {"errors": prepared.errors})
        return Prepared(dhis2_payload=prepared.payload, import_params=params, value_count=prepared.object_count,
                        destination=body.get("destination"),
                        response_extra={"uids": prepared.uids, "counts": prepared.counts})

    # --- delivery ------------------------------------------------------------------------
    async def deliver(self, client: Any, submission: dict[str, Any], context: Any) -> Outcome:
        """Import one submission (sync, async, or resuming a persisted job)."""
        sid = submission["id"]
        payload = submission["dhis2_payload"]
        params = dict(submission.get("import_params") or {})
        params.setdefault("importStrategy", "CREATE_AND_UPDATE")
        params.setdefault("reportMode", self.report_mode)
        slots = collect(payload)
        counts = _counts(slots)
        if any(s.ttype == "RELATIONSHIP" for s in slots):
            payload, refused = await self._for_version(client, payload)
            if refused is not None:
                return refused
        job_id = submission.get("dhis2_job_id")
        if job_id:
            self.log.info("tracker submission {sid}: resuming DHIS2 job {job} ({counts})", sid=sid, job=job_id,
                          counts=counts)
            outcome = await self._poll(client, job_id, context, params["reportMode"])
            if outcome is not None:
                return self._done(sid, outcome, counts)
            self.log.warn("tracker submission {sid}: DHIS2 does not know job {job}; posting again", sid=sid,
                          job=job_id)
            await _forget_job(context)
        size = len(json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
        if size <= self.async_threshold_bytes:
            self.log.info("tracker submission {sid}: importing {counts} ({size} bytes, sync)", sid=sid,
                          counts=counts, size=size)
            return self._done(sid, await client.post_tracker(payload, {**params, "async": "false"}), counts)
        self.log.info("tracker submission {sid}: importing {counts} ({size} bytes, async)", sid=sid,
                      counts=counts, size=size)
        accepted = await client.post_tracker(payload, {**params, "async": "true"})
        if accepted.kind is not OutcomeKind.ACCEPTED_ASYNC or accepted.job is None:
            return self._done(sid, accepted, counts)
        # Persist the job BEFORE polling: a crash from here on resumes this job, never re-posts.
        if not await context.save_job(accepted.job.id):
            return Outcome(OutcomeKind.RETRY, "lease_lost", message="another attempt took this submission over")
        outcome = await self._poll(client, accepted.job.id, context, params["reportMode"])
        if outcome is None:  # forgotten right after it was accepted: the next attempt posts again
            await _forget_job(context)
            outcome = Outcome(OutcomeKind.RETRY, "job_unknown",
                              message=f"DHIS2 forgot job {accepted.job.id} it had just accepted")
        return self._done(sid, outcome, counts)

    async def read_back(self, client: Any, submission: dict[str, Any]) -> Any:
        """After a lost answer: are the objects in DHIS2? Read by their UIDs (dhis2gw.kinds.read_back)."""
        return await read_back_tracker(client, submission)

    def _done(self, sid: int, outcome: Outcome, counts: str) -> Outcome:
        self.log.info("tracker submission {sid} ({counts}): {kind} {message}", sid=sid, counts=counts,
                      kind=outcome.kind.value, message=outcome.message or outcome.reason or "")
        return outcome

    async def _for_version(self, client: Any, payload: dict[str, Any]) -> tuple[dict[str, Any], Outcome | None]:
        """Relationship items in the destination's shape (the version decides; ask if unknown)."""
        if getattr(client, "version", None) is None:
            info = await client.system_info()
            if info.kind in (OutcomeKind.DESTINATION_FAILURE, OutcomeKind.RATE_LIMITED):
                return payload, info
        version = getattr(client, "version", None)
        if version is None:
            return payload, None  # unknown: send the items as the submitter shaped them
        return render_relationship_items(payload, nested=tuple(version) >= (2, 38, 0)), None

    async def _failed_job(self, client: Any, job_id: str, context: Any) -> Outcome | None:
        """The job failed inside DHIS2 (its report will never come): RETRY and post again next attempt."""
        failed = await _failed_job_outcome(client, job_id)
        if failed is None:
            return None
        await _forget_job(context)
        return dataclasses.replace(failed, message=f"job {job_id}: {failed.message}")

    async def _poll(self, client: Any, job_id: str, context: Any, report_mode: str) -> Outcome | None:
        """Poll a job until it ends; None when DHIS2 does not know it (post again)."""
        clock = context.clock
        started = clock.seconds()
        unknown_since: float | None = None
        interval = self.poll_interval
        failed_polls = 0
        seen_rows = False
        while True:
            outcome = await client.get_tracker_job(job_id, report_mode)
            if outcome.kind is OutcomeKind.PENDING and outcome.reason in ("job_running", "job_report_not_ready"):
                seen_rows = True
            if outcome.kind is OutcomeKind.PENDING and outcome.reason in ("job_unknown", "job_report_not_ready") \
                    and seen_rows:
                # A job whose feed had rows and is now empty (2.44 wipes a failed job's feed), or that
                # ended with no report: its JobConfiguration says whether it failed inside DHIS2.
                failed = await self._failed_job(client, job_id, context)
                if failed is not None:
                    return failed
            if outcome.kind is OutcomeKind.PENDING and outcome.reason == "job_unknown":
                # Notifications may be gone while the report is still there.
                outcome = await client.get_tracker_job_report(job_id, report_mode)
                if outcome.kind is OutcomeKind.PENDING:
                    unknown_since = clock.seconds() if unknown_since is None else unknown_since
                    if clock.seconds() - unknown_since >= self.unknown_job_grace:
                        return None
            elif outcome.kind is OutcomeKind.PENDING:
                unknown_since = None
            if (outcome.kind in (OutcomeKind.RETRY, OutcomeKind.SUSPECT) and outcome.stats is None
                    and failed_polls < self.poll_failures):
                # The poll itself failed (answer lost, timeout, a 500 reading the job), not the import:
                # the job is still DHIS2's, so ask again rather than end the attempt and spend a retry.
                failed_polls += 1
                self.log.info("job {job}: poll failed ({reason}); polling again", job=job_id, reason=outcome.reason)
            elif outcome.kind is not OutcomeKind.PENDING:
                if outcome.kind is OutcomeKind.RETRY and outcome.stats is not None:
                    # The job finished but asks for a retry (e.g. a parent still missing): the
                    # next attempt must post again, not re-read this report.
                    await _forget_job(context)
                finished: Outcome = dataclasses.replace(outcome, message=f"job {job_id}: {outcome.message}".strip())
                return finished
            else:
                failed_polls = 0
            if clock.seconds() - started >= self.poll_timeout:
                return Outcome(OutcomeKind.RETRY, "job_timeout", job=outcome.job,
                               message=f"job {job_id} still running after {self.poll_timeout:g} s; "
                                       "the next attempt polls it again")
            await deferLater(clock, interval, lambda: None)
            interval = min(interval * 1.5, self.poll_max_interval)


async def _failed_job_outcome(client: Any, job_id: str) -> Outcome | None:
    """RETRY ``job_failed`` when DHIS2's JobConfiguration says the job failed, else None."""
    reader = getattr(client, "get_job_configuration", None)
    if reader is None:
        return None
    answer: Outcome = await reader(job_id)
    if answer.kind is OutcomeKind.RETRY and answer.reason == "job_failed":
        return answer
    return None


async def _forget_job(context: Any) -> None:
    """Clear the persisted job id (the store's UPDATE takes None as NULL)."""
    await context.save_job(None)


def _counts(slots: list[Slot]) -> str:
    """``2 tracked entities, 2 enrollments, 3 events`` for the logs (nested objects counted)."""
    tally: dict[str, int] = {}
    for slot in slots:
        tally[slot.ttype] = tally.get(slot.ttype, 0) + 1
    names = {"TRACKED_ENTITY": "tracked entities", "ENROLLMENT": "enrollments", "EVENT": "events",
             "RELATIONSHIP": "relationships"}
    return ", ".join(f"{n} {names[t]}" for t, n in tally.items()) or "no objects"
