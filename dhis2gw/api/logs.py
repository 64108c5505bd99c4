"""The submission log for operators: list, detail, delete, purge and requeue (``/api/v2/logs``).

Also the original's re-enqueue paths, ``GET|POST /aggregate/reenqueue/{task_id}`` and
``POST /aggregate/reenqueue/batch``, mapped onto requeue by submission id (the original looked
for Asynq tasks that no longer existed once a submission had failed, so it could never work).
Items are plain JSON; the original's names ``submitted_at``, ``task_id`` and ``retry_count``
are added to each item so its log viewer keeps working.
"""
from __future__ import annotations

import math
import re
from datetime import datetime, tzinfo
from typing import Any

from dhis2gw.api.routing import OPERATOR, Call, Response, route
from dhis2gw.errors import ApiError, not_found
from dhis2gw.operations import schemas
from dhis2gw.operations.filters import (
    FILTER_PARAMETERS,
    PAGE_PARAMETERS,
    encode_cursor,
    filter_from_call,
    filter_from_json,
    page_from_call,
    parse_instant,
)
from dhis2gw.operations.requeue import RequeueService
from dhis2gw.storage.logs import LogFilter, LogStore, selection_json
from dhis2gw.storage.statuses import FINAL_STATES, PENDING_STATES, REQUEUEABLE
from dhis2gw.storage.submissions import SubmissionStore

_ERROR_EVENTS = ("partial", "rejected", "retrying", "failed", "destination_unavailable", "rate_limited",
                 "lease_expired")
_FORCE = ({"name": "force", "in": "query", "description": "Also requeue a delivered submission.",
           "schema": {"type": "boolean", "default": False}},)


def _plain(value: Any, tz: tzinfo | None = None) -> Any:
    """JSON-ready: datetimes as ISO 8601 in the gateway's time zone, offset included."""
    if isinstance(value, datetime):
        return (value.astimezone(tz) if tz is not None and value.tzinfo is not None else value).isoformat()
    return value


# "ERROR created=0 updated=0 ignored=1 deleted=0: <reason>" → the reason, then the counters.
_COUNTERS_FIRST = re.compile(r"^(?P<status>SUCCESS|WARNING|ERROR|OK)?\s*(?P<counts>(?:\w+=\d+[,;]?\s*)+)"
                             r"[:;,.\u2014-]*\s*(?P<rest>.+)$", re.S)


def human_reason(error: str | None) -> str | None:
    """The error text with the human reason first: DHIS2's status and counters move to the end."""
    if not error:
        return error
    m = _COUNTERS_FIRST.match(error.strip())
    if not m or not m.group("rest").strip():
        return error
    tail = " ".join(p for p in (m.group("status"), m.group("counts").strip().rstrip(",;")) if p)
    return f"{m.group('rest').strip()} ({tail})"


def log_item(row: dict[str, Any], tz: tzinfo | None = None) -> dict[str, Any]:
    """A submission row as a list item: plain JSON plus the original's field names."""
    out = {k: _plain(v, tz) for k, v in row.items() if k not in ("lease_owner", "request_hash")}
    out["reason"] = human_reason(row.get("error"))
    if isinstance(out.get("uid"), str):
        out["uid"] = out["uid"].strip()
    out["submitted_at"] = out.get("created_at")
    out["task_id"] = str(row["id"])
    out["retry_count"] = row.get("job_failures", 0)
    return out


_UID = re.compile(r"^[A-Za-z][A-Za-z0-9]{10}$")


def payload_uids(value: Any, found: set[str] | None = None) -> set[str]:
    """Every string in a (DHIS2) payload shaped like a UID."""
    found = set() if found is None else found
    if isinstance(value, dict):
        for item in value.values():
            payload_uids(item, found)
    elif isinstance(value, list):
        for item in value:
            payload_uids(item, found)
    elif isinstance(value, str) and _UID.match(value):
        found.add(value)
    return found


def attempts_from_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per attempt: when it started, how it ended."""
    attempts: dict[int, dict[str, Any]] = {}
    for e in events:
        n = e.get("attempt")
        if n is None:
            continue
        entry = attempts.setdefault(n, {"attempt": n, "started_at": None, "outcome": None, "http_status": None,
                                        "duration_ms": None, "detail": None})
        if e["event"] == "processing":
            entry["started_at"] = e["at"]
        else:
            entry.update(outcome=e["event"], http_status=e["http_status"], duration_ms=e["duration_ms"],
                         detail=e["detail"], ended_at=e["at"])
    return [attempts[n] for n in sorted(attempts)]


#: The windows of ``GET /logs/stats``: name → seconds back from now.
STATS_WINDOWS = {"24h": 86400.0, "7d": 7 * 86400.0}


class LogsApi:
    """``/logs`` and the original's ``/aggregate/reenqueue`` paths (mount under ``/api/v2``)."""

    def __init__(self, logs: LogStore, store: SubmissionStore, requeue: RequeueService, tz: tzinfo,
                 base_path: str = "/api/v2") -> None:
        self.logs = logs
        self.store = store
        self.requeue = requeue
        self.tz = tz
        self.base_path = base_path

    # --- list and detail -------------------------------------------------------------------
    @route("GET", "/logs", roles=OPERATOR, summary="List submissions (filter, sort, page)", tags=("logs",),
           query=FILTER_PARAMETERS + PAGE_PARAMETERS + (
               {"name": "include_payload", "in": "query", "schema": {"type": "boolean", "default": False},
                "description": "Add payload and dhis2_payload to each item."},),
           response_schema=schemas.LOG_PAGE, responses={400: "a filter, page or cursor does not parse"})
    async def list_logs(self, call: Call) -> dict[str, Any]:
        f = filter_from_call(call, self.tz)
        page = page_from_call(call)
        result = await self.logs.list(f, page, with_payloads=call.bool_arg("include_payload"))
        next_cursor = (encode_cursor(page.sort, page.descending, result.last_key)
                       if result.has_more and result.last_key is not None else None)
        return {"items": [log_item(r, self.tz) for r in result.items], "total": result.total, "page": page.page,
                "timezone": str(self.tz),
                "page_size": page.page_size,
                "total_pages": (math.ceil(result.total / page.page_size) if result.total is not None else None),
                "total_exact": result.total_exact, "next_cursor": next_cursor, "filter": f.to_json()}

    @route("GET", "/logs/stats", roles=OPERATOR,
           summary="Submissions per status created in the last 24 hours and 7 days",
           tags=("logs",), response_schema=schemas.LOG_STATS)
    async def stats(self, call: Call) -> dict[str, Any]:
        """One pass over the table (the dashboard's counts, instead of one /logs total per status)."""
        return {"windows": await self.logs.status_counts(STATS_WINDOWS)}

    @route("GET", "/logs/<int:submission_id>", roles=OPERATOR, summary="One submission with payloads and timeline",
           tags=("logs",), response_schema=schemas.LOG_DETAIL, responses={404: "no such submission"})
    async def get_log(self, call: Call, submission_id: int) -> dict[str, Any]:
        row = await self.store.get(submission_id)
        if row is None:
            raise not_found("submission")
        events = [{k: _plain(v, self.tz) for k, v in e.items()} for e in await self.store.events(submission_id)]
        await self.logs.describe([row])
        out = log_item(row, self.tz)
        out["timezone"] = str(self.tz)
        out["attempts_detail"] = attempts_from_events(events)
        out["errors"] = [e for e in events if e["event"] in _ERROR_EVENTS and (e["detail"] or e["http_status"])]
        out["events"] = events
        out["names"] = await self.logs.names_of(sorted(payload_uids(row.get("dhis2_payload"))))
        return out

    # --- delete and purge ------------------------------------------------------------------
    @route("DELETE", "/logs/<int:submission_id>", roles=OPERATOR, summary="Delete one final submission",
           tags=("logs",), response_schema=schemas.DELETED,
           responses={404: "no such submission", 409: "the submission is not final (queued, processing, retrying)"})
    async def delete_log(self, call: Call, submission_id: int) -> dict[str, Any]:
        blocking = await self.logs.delete(submission_id)
        if blocking == "missing":
            raise not_found("submission")
        if blocking is not None:
            raise ApiError(409, "not_final", f"submission {submission_id} is {blocking}; only final submissions"
                           " (delivered, partial, rejected, failed) can be deleted",
                           {"status": blocking})
        return {"message": "Deleted 1 log(s)", "id": submission_id, "deleted": 1}

    @route("DELETE", "/logs/purge", roles=OPERATOR, summary="Purge final submissions created before a date",
           tags=("logs",), response_schema=schemas.DELETED,
           query=({"name": "before", "in": "query", "required": False, "schema": {"type": "string"},
                   "description": "Delete rows created before this date (server time zone) or datetime."
                                  " Required (the original's `date` is accepted too).", "example": "2024-01-01"},
                  {"name": "date", "in": "query", "schema": {"type": "string"}, "description": "Original's name."},
                  {"name": "status", "in": "query", "schema": {"type": "string"},
                   "description": "Final statuses to purge (default all four: delivered, partial, rejected, failed)."},
                  {"name": "dry_run", "in": "query", "schema": {"type": "boolean", "default": False},
                   "description": "Only count what would be deleted."}),
           responses={400: "missing or bad `before`, or a non-final status"})
    async def purge(self, call: Call) -> dict[str, Any]:
        raw = call.arg("before") or call.arg("date")
        if raw and "\x00" in raw:
            raw = "invalid"
        if not raw:
            raise ApiError(400, "invalid_parameter", "query parameter 'before' is required (a date or datetime)",
                           {"parameter": "before"})
        before, _ = parse_instant("before", raw, self.tz)
        statuses = [s.lower() for s in call.args("status")] or list(FINAL_STATES)
        bad = [s for s in statuses if s not in FINAL_STATES]
        if bad:
            raise ApiError(400, "invalid_parameter", f"status {bad[0]!r} cannot be purged; only final states"
                           f" ({', '.join(FINAL_STATES)})", {"parameter": "status", "value": bad[0]})
        statuses = list(dict.fromkeys(statuses))
        dry_run = call.bool_arg("dry_run")
        n = await self.logs.purge(before, statuses, dry_run=dry_run)
        verb = "Would delete" if dry_run else "Deleted"
        return {"message": f"{verb} {n} logs older than {before.isoformat()}", "deleted": n, "dry_run": dry_run,
                "before": before.isoformat(), "statuses": statuses}

    # --- requeue ------------------------------------------------------------------------------
    async def _requeue_one(self, call: Call, submission_id: int, force: bool) -> dict[str, Any]:
        actor = call.require_principal().username
        row = await self.store.get(submission_id, with_payloads=False)
        if row is None:
            raise not_found("submission")
        counts = await self.requeue.requeue_ids([submission_id], actor, force)
        if counts.requeued:
            return {"id": submission_id, "status": "queued", "requeued": True, "enqueued": counts.enqueued == 1,
                    "message": f"Submission {submission_id} queued again"}
        status = row["status"]
        if status in PENDING_STATES:
            raise ApiError(409, "already_pending", f"submission {submission_id} is {status}: it is already on its"
                           " way", {"status": status})
        if status == "delivered":
            raise ApiError(409, "delivered", f"submission {submission_id} was delivered; add force=true to send"
                           " it again", {"status": status})
        raise ApiError(409, "not_requeueable", f"submission {submission_id} is {status}", {"status": status})

    @route("POST", "/logs/<int:submission_id>/requeue", roles=OPERATOR, summary="Requeue one submission",
           tags=("logs",), query=_FORCE, response_schema=schemas.REQUEUE_ONE,
           responses={404: "no such submission", 409: "pending already, or delivered without force=true"})
    async def requeue_one(self, call: Call, submission_id: int) -> dict[str, Any]:
        return await self._requeue_one(call, submission_id, call.bool_arg("force"))

    @route("POST", "/logs/requeue", roles=OPERATOR, summary="Requeue many submissions (ids or a filter)",
           tags=("logs",), body_schema=schemas.REQUEUE_BODY, response_schema=schemas.REQUEUE_COUNTS,
           responses={202: "a job was started (more rows than are requeued inline); poll status_url",
                      400: "bad ids or filter"})
    async def requeue_many(self, call: Call) -> Response:
        actor = call.require_principal().username
        body = call.body
        force = bool(body.get("force"))
        if "ids" in body:
            refs = [str(x) for x in body["ids"] if "\x00" not in str(x)]
            found = await self.logs.find_ids(refs) if any(not r.isdigit() for r in refs) else {}
            ids: list[int] = []
            for ref in refs:
                if ref.isdigit() and len(ref) < 19:
                    ids.append(int(ref))
                elif ref in found:
                    ids.append(found[ref])
            ids = list(dict.fromkeys(ids))
            if len(ids) > self.requeue.sync_limit:
                job_id = await self.requeue.start_job(actor, force, len(ids), ids=ids)
                return self._job_started(job_id, len(ids))
            counts = await self.requeue.requeue_ids(ids, actor, force)
            return Response({"matched": len(ids), **counts.as_json(), "job_id": None, "status_url": None,
                             "ids": counts.moved_ids})
        f = filter_from_json(body["filter"], self.tz)
        if f == LogFilter():
            raise ApiError(400, "empty_filter", "the filter selects nothing specific; name at least one filter")
        matched = await self.logs.count(f)
        if matched > self.requeue.sync_limit:
            job_id = await self.requeue.start_job(actor, force, matched, f=f)
            return self._job_started(job_id, matched)
        counts = await self.requeue.requeue_filter(f, actor, force)
        return Response({"matched": matched, **counts.as_json(), "job_id": None, "status_url": None})

    def _job_started(self, job_id: str, matched: int) -> Response:
        url = f"{self.base_path}/logs/requeue/{job_id}"
        return Response({"matched": matched, "job_id": job_id, "status_url": url}, status=202,
                        headers={"Location": url})

    @route("GET", "/logs/requeue/<job_id>", roles=OPERATOR, summary="Progress of a requeue job", tags=("logs",),
           response_schema=schemas.REQUEUE_JOB, responses={404: "no such job"})
    async def requeue_job(self, call: Call, job_id: str) -> dict[str, Any]:
        job = await self.logs.get_job(job_id) if len(job_id) <= 64 and "\x00" not in job_id else None
        if job is None:
            raise not_found("requeue job")
        out = {k: _plain(v) for k, v in job.items()}
        out["selection"] = selection_json(job["selection"])
        out["progress"] = round(job["scanned"] / job["matched"], 4) if job["matched"] else (
            1.0 if job["status"] == "done" else 0.0)
        return out

    # --- the original's paths ------------------------------------------------------------------
    @route("GET", "/aggregate/reenqueue/<task_id>", roles=OPERATOR, tags=("logs",), deprecated=True,
           summary="Original's re-enqueue of one submission (use POST /logs/{id}/requeue)", query=_FORCE,
           response_schema=schemas.REQUEUE_ONE,
           responses={404: "no such submission", 409: "pending already, or delivered without force=true"})
    @route("POST", "/aggregate/reenqueue/<task_id>", roles=OPERATOR, tags=("logs",), deprecated=True,
           summary="Original's re-enqueue of one submission (use POST /logs/{id}/requeue)", query=_FORCE,
           response_schema=schemas.REQUEUE_ONE,
           responses={404: "no such submission", 409: "pending already, or delivered without force=true"})
    async def reenqueue(self, call: Call, task_id: str) -> dict[str, Any]:
        found = await self.logs.find_ids([task_id]) if len(task_id) <= 40 and "\x00" not in task_id else {}
        if task_id not in found:
            raise ApiError(404, "not_found", f"Job log not found for task ID: {task_id}")
        out = await self._requeue_one(call, found[task_id], call.bool_arg("force"))
        out["message"] = f"Re-enqueued task {task_id}"
        return out

    @route("POST", "/aggregate/reenqueue/batch", roles=OPERATOR, tags=("logs",), deprecated=True,
           summary="Original's batch re-enqueue (use POST /logs/requeue)", body_schema=schemas.BATCH_BODY,
           response_schema=schemas.BATCH_RESULT)
    async def reenqueue_batch(self, call: Call) -> dict[str, Any]:
        refs = [str(x) for x in call.body["task_ids"] if "\x00" not in str(x)]
        found = await self.logs.find_ids(refs)
        actor = call.require_principal().username
        counts = await self.requeue.requeue_ids(list(found.values()), actor, bool(call.body.get("force")))
        moved = set(counts.moved_ids)
        errors = [f"Task {r}: not found" for r in refs if r not in found]
        errors += [f"Task {r}: not requeueable (pending, or delivered without force)"
                   for r in refs if r in found and found[r] not in moved]
        return {"queue": call.body.get("queue") or "default", "reEnqueued": len(moved), "failed": len(errors),
                "errors": errors[:1000]}


def requeueable_states(force: bool) -> tuple[str, ...]:
    """The states a requeue moves (for documentation and tests)."""
    return REQUEUEABLE + (("delivered",) if force else ())

