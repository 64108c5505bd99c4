"""Interpretation of DHIS2 answers for aggregate imports, async jobs and metadata writes.

Every function takes ``(status, headers, body_bytes)`` (plus ``now`` for HTTP-date
``Retry-After`` values) and returns an `Outcome`; none raises on odd input.

Version tolerance: 2.36/2.37 answer ``POST /api/dataValueSets`` with a bare
``ImportSummary`` and HTTP 200 even for WARNING/ERROR; 2.38-2.42 wrap it in a
WebMessage (``response``) and use 409 for WARNING/ERROR; 2.43.1+ answer a mixed
import ``200 WARNING`` and an import that stored nothing ``409 ERROR`` even for
value-level errors.  The parser looks for a ``response`` object first and falls
back to the top level, so every shape (and the versioned ``/api/37/`` path) is
read the same way.  The body's status and counts win, never the HTTP code:

* nothing imported, updated or deleted, and conflicts or ignored values -> REJECTED
  (reason ``nothing_stored``) whatever the status string says (2.36-2.42 say
  WARNING, 2.43+ ERROR);
* ``updated`` counts as stored like ``imported`` (2.43+ count first writes as updated);
* the counts are never reconciled with what was sent (2.43 E8030/E8032 count nothing);
* a 409 that matches a row of `dhis2gw.dhis2.transient.KNOWN_TRANSIENT` (the
  BatchHandler flush of 2.43+, SQL-state text) is RETRY, not a rejection.

Tracker answers are interpreted in `dhis2gw.dhis2.tracker_reports`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from dhis2gw.dhis2.conflicts import normalise_conflict
from dhis2gw.dhis2.http_rules import (
    DecodedBody,
    as_int,
    decode_body,
    looks_transient,
    screen_json_answer,
    web_message_error,
    web_message_text,
)
from dhis2gw.dhis2.outcome import JobProgress, JobRef, Outcome, OutcomeKind
from dhis2gw.dhis2.transient import known_transient
from dhis2gw.dhis2.versions import Version

__all__ = [
    "interpret_data_value_set_response", "interpret_import_summary", "interpret_import_summaries",
    "interpret_job_notifications", "interpret_metadata_response", "interpret_task_summary",
    "normalise_conflict", "normalise_import_count", "normalise_stats", "transient_outcome",
]

_COUNT_KEYS = ("imported", "updated", "ignored", "deleted")
_STATS_KEYS = ("created", "updated", "deleted", "ignored", "total")
_IMPORT_FAILED = "the import process failed"


# --------------------------------------------------------------------------- helpers


def normalise_import_count(raw: Any) -> dict[str, int]:
    """``{imported, updated, ignored, deleted}`` with missing keys as 0."""
    raw = raw if isinstance(raw, dict) else {}
    return {key: as_int(raw.get(key)) for key in _COUNT_KEYS}


def normalise_stats(raw: Any) -> dict[str, int]:
    """``{created, updated, deleted, ignored, total}`` with missing keys as 0."""
    raw = raw if isinstance(raw, dict) else {}
    return {key: as_int(raw.get(key)) for key in _STATS_KEYS}


def _rejected_indexes(summary: dict[str, Any], conflicts: list[dict[str, Any]]) -> tuple[int, ...]:
    """``rejectedIndexes`` (2.39+), else the union of the conflicts' ``indexes`` (2.37/2.38)."""
    raw = summary.get("rejectedIndexes")
    if isinstance(raw, list) and raw:
        return tuple(sorted({as_int(i) for i in raw}))
    return tuple(sorted({i for c in conflicts for i in c["indexes"]}))


def _envelope(decoded: DecodedBody) -> tuple[dict[str, Any], dict[str, Any]]:
    """(outer body, the object that holds the report): ``response`` when wrapped, else the body."""
    outer = decoded.json if isinstance(decoded.json, dict) else {}
    inner = outer.get("response")
    return outer, inner if isinstance(inner, dict) else outer


def _job_from(inner: dict[str, Any], job_type: str) -> JobRef | None:
    job_id = inner.get("id")
    if not isinstance(job_id, str) or not job_id:
        return None
    location = inner.get("location") or inner.get("relativeNotifierEndpoint")
    return JobRef(id=job_id, job_type=str(inner.get("jobType") or job_type), location=location)


def is_data_value_job(inner: dict[str, Any]) -> bool:
    """True for the async ``dataValueSets`` answer (JobConfiguration, any version)."""
    return (
        inner.get("responseType") == "JobConfiguration"
        or "jobType" in inner
        or "relativeNotifierEndpoint" in inner
    )


def _is_summary(inner: dict[str, Any]) -> bool:
    return inner.get("responseType") == "ImportSummary" or "importCount" in inner


# --------------------------------------------------------------------------- aggregate


def transient_outcome(
    status: int, text: str | None, version: Version | None, body_value: Any, **fields: Any
) -> Outcome | None:
    """RETRY for an answer listed in `KNOWN_TRANSIENT`, else None."""
    row = known_transient(status, text, version)
    if row is None:
        return None
    return Outcome(
        OutcomeKind.RETRY, row.reason, http_status=status, body=body_value,
        message=f"HTTP {status} known transient answer ({row.name}): {(text or '')[:300]}", **fields,
    )


def interpret_import_summary(
    summary: dict[str, Any], status: int, body_value: Any, envelope_message: str | None = None,
    version: Version | None = None,
) -> Outcome:
    """Outcome of one (unwrapped) aggregate ``ImportSummary`` (rules in the module docstring)."""
    dhis2_status = str(summary.get("status") or "").upper() or None
    counts = normalise_import_count(summary.get("importCount"))
    conflicts = [normalise_conflict(c) for c in summary.get("conflicts") or []]
    stored = counts["imported"] + counts["updated"] + counts["deleted"]
    description = str(summary.get("description") or "")
    common: dict[str, Any] = {
        "http_status": status,
        "dhis2_status": dhis2_status,
        "import_count": counts,
        "conflicts": tuple(conflicts),
        "rejected_indexes": _rejected_indexes(summary, conflicts),
        "body": body_value,
    }
    tally = (
        f"imported={counts['imported']} updated={counts['updated']} "
        f"ignored={counts['ignored']} deleted={counts['deleted']}"
    )
    codes = sorted({c["errorCode"] for c in conflicts if c["errorCode"]})
    conflict_note = f", {len(conflicts)} conflict(s) {' '.join(codes)}".rstrip()
    if dhis2_status in ("SUCCESS", "OK"):
        return Outcome(OutcomeKind.DELIVERED, None, message=f"SUCCESS {tally}", **common)
    nothing_stored = stored == 0 and bool(conflicts or counts["ignored"])
    failed = description.lower().startswith(_IMPORT_FAILED)
    if nothing_stored and (dhis2_status == "WARNING" or (
            dhis2_status == "ERROR" and common["rejected_indexes"] and not failed)):
        # Every value was refused: that is a rejection whatever the status string says
        # (2.36-2.42 say WARNING, 2.43+ ERROR, both for the same value-level refusals).
        detail = "; ".join(str(c["message"]) for c in conflicts[:3])
        return Outcome(
            OutcomeKind.REJECTED, "nothing_stored",
            message=f"{dhis2_status} nothing stored {tally}{conflict_note}"
                    + (f": {detail}" if detail else ""), **common,
        )
    if dhis2_status == "WARNING":
        return Outcome(
            OutcomeKind.PARTIAL, "conflicts", message=f"WARNING {tally}{conflict_note}", **common
        )
    if dhis2_status == "ERROR":
        if stored > 0:
            return Outcome(
                OutcomeKind.PARTIAL, "conflicts", message=f"ERROR {tally}{conflict_note}", **common
            )
        if failed:
            # Parse errors are permanent; database trouble is worth a bounded retry.
            known = transient_outcome(
                status, description, version, body_value, dhis2_status=dhis2_status, import_count=counts,
            )
            if known is not None:
                return known
            if looks_transient(description):
                return Outcome(
                    OutcomeKind.RETRY, "import_failed_transient", message=description, **common
                )
            return Outcome(OutcomeKind.REJECTED, "import_failed", message=description, **common)
        detail = "; ".join(str(c["message"]) for c in conflicts[:3]) or description
        return Outcome(
            OutcomeKind.REJECTED, "import_aborted", message=f"ERROR {tally}: {detail}", **common
        )
    return Outcome(
        OutcomeKind.RETRY, "unrecognised_response",
        message=f"import summary with unknown status {dhis2_status!r} {envelope_message or ''}".strip(),
        **common,
    )


def interpret_import_summaries(summaries: dict[str, Any], status: int, body_value: Any) -> Outcome:
    """Outcome of an ``ImportSummaries`` (deprecated ``/api/events`` & co., 2.36-2.41)."""
    dhis2_status = str(summaries.get("status") or "").upper() or None
    counts = {key: as_int(summaries.get(key)) for key in _COUNT_KEYS}
    conflicts: list[dict[str, Any]] = []
    for item in summaries.get("importSummaries") or []:
        if isinstance(item, dict):
            conflicts.extend(
                normalise_conflict(c, item.get("reference")) for c in item.get("conflicts") or []
            )
    if dhis2_status not in ("SUCCESS", "OK", "WARNING", "ERROR"):
        dhis2_status = "ERROR" if conflicts else dhis2_status
    synthetic: dict[str, Any] = {
        "status": dhis2_status, "importCount": counts, "conflicts": [],
        "description": summaries.get("description"),
    }
    outcome = interpret_import_summary(synthetic, status, body_value)
    return replace(outcome, conflicts=tuple(conflicts))


def interpret_data_value_set_response(
    status: int,
    headers: Mapping[str, str] | None,
    body: bytes | str | None,
    *,
    now: float | None = None,
    version: Version | None = None,
) -> Outcome:
    """Interpret the answer to ``POST /api/dataValueSets`` (sync or async), any version.

    Also reads ``GET /api/system/taskSummaries/DATAVALUE_IMPORT/{id}`` (a bare
    summary with HTTP 200).  An async answer becomes ACCEPTED_ASYNC with `Outcome.job`.
    """
    decoded = decode_body(body)
    screened = screen_json_answer(status, headers, decoded, now)
    if screened is not None:
        return screened
    outer, inner = _envelope(decoded)
    if inner is not outer and is_data_value_job(inner):
        job = _job_from(inner, "DATAVALUE_IMPORT")
        if job is not None:
            return Outcome(
                OutcomeKind.ACCEPTED_ASYNC, "async_job", http_status=status,
                dhis2_status=outer.get("status"), job=job, body=decoded.json,
                message=str(outer.get("message") or f"async job {job.id}"),
            )
    if _is_summary(inner):
        return interpret_import_summary(inner, status, decoded.json, outer.get("message"), version)
    if inner.get("responseType") == "ImportSummaries":
        return interpret_import_summaries(inner, status, decoded.json)
    known = transient_outcome(status, web_message_text(decoded), version, decoded.json)
    return known if known is not None else web_message_error(status, decoded)


# --------------------------------------------------------------------------- async jobs


def interpret_job_notifications(body: bytes | str | list[Any] | None) -> JobProgress:
    """Progress from ``GET /api/system/tasks/{type}/{id}`` or ``/api/tracker/jobs/{id}``.

    ``body`` is the raw body or the already parsed list.  The list is newest
    first; the job is done when an entry says ``completed: true``.  An empty list
    means DHIS2 does not know the job.
    """
    if isinstance(body, list):
        items: Any = body
    else:
        decoded = decode_body(body)
        items = decoded.json if decoded.is_json and isinstance(decoded.json, list) else []
    items = [i for i in items if isinstance(i, dict)]
    if not items:
        return JobProgress(completed=False, known=False)
    newest = items[0]
    completed = any(bool(i.get("completed")) for i in items)
    return JobProgress(
        completed=completed, known=True, level=newest.get("level"), message=newest.get("message")
    )


def pending_outcome(job: JobRef, progress: JobProgress, status: int | None, body: Any) -> Outcome:
    """PENDING outcome for a job that is still running (or unknown to DHIS2)."""
    note = progress.message if progress.known else "job unknown to DHIS2 (restarted or another node?)"
    return Outcome(
        OutcomeKind.PENDING, "job_running" if progress.known else "job_unknown",
        http_status=status, body=body, message=f"job {job.id}: {note}",
        job=JobRef(job.id, job.job_type, job.location, progress.completed, progress.message),
    )


def interpret_task_summary(
    status: int, headers: Mapping[str, str] | None, body: bytes, *, now: float | None = None,
    job: JobRef | None = None,
) -> Outcome:
    """``/api/system/taskSummaries/DATAVALUE_IMPORT/{id}``: empty (2.40+) or ``null`` (2.36) = not ready."""
    decoded = decode_body(body)
    if status == 200 and (decoded.empty or (decoded.is_json and decoded.json is None)) and job is not None:
        return Outcome(
            OutcomeKind.PENDING, "job_summary_not_ready", http_status=status,
            job=JobRef(job.id, job.job_type, job.location, True, None),
            message=f"job {job.id}: summary not available yet",
        )
    return interpret_data_value_set_response(status, headers, body, now=now)


# --------------------------------------------------------------------------- metadata


def _metadata_errors(inner: dict[str, Any]) -> list[dict[str, Any]]:
    """ErrorReports of an ObjectReport, TypeReport or ImportReport, normalised."""
    found: list[dict[str, Any]] = []

    def add(reports: Any, uid: Any) -> None:
        for raw in reports or []:
            if isinstance(raw, dict):
                found.append({
                    "code": raw.get("errorCode"),
                    "message": raw.get("message"),
                    "trackerType": None,
                    "uid": raw.get("uid", uid),
                    "args": list(raw.get("errorProperties") or []),
                    "property": raw.get("errorProperty"),
                })

    add(inner.get("errorReports"), inner.get("uid"))
    type_reports = inner.get("typeReports") or []
    if "objectReports" in inner:
        type_reports = [inner, *type_reports]
    for type_report in type_reports:
        if isinstance(type_report, dict):
            for obj in type_report.get("objectReports") or []:
                if isinstance(obj, dict):
                    add(obj.get("errorReports"), obj.get("uid"))
    return found


def interpret_metadata_response(
    status: int,
    headers: Mapping[str, str] | None,
    body: bytes | str | None,
    *,
    now: float | None = None,
) -> Outcome:
    """Interpret an org-unit create/update, a group-membership add, or ``POST /api/metadata``.

    Shapes: 201/200 WebMessage with an ObjectReport (create/update), 409 WARNING
    with ``errorReports`` (validation, nothing saved), 2.36-2.37 group add = 204
    No Content, 2.38+ = 200 with a TypeReport, ``/api/metadata`` = ImportReport.
    """
    decoded = decode_body(body)
    if decoded.empty and status in (200, 201, 204):  # the status rules never decide a 2xx
        return Outcome(
            OutcomeKind.DELIVERED, None, http_status=status, message=f"HTTP {status}, no content"
        )
    screened = screen_json_answer(status, headers, decoded, now)
    if screened is not None:
        return screened
    outer, inner = _envelope(decoded)
    if _is_summary(inner) and "responseType" not in outer:
        return interpret_import_summary(inner, status, decoded.json)
    errors = _metadata_errors(inner)
    stats = normalise_stats(inner.get("stats")) if isinstance(inner.get("stats"), dict) else None
    outer_status = str(outer.get("status") or "").upper() or None
    inner_status = str(inner.get("status") or "").upper() or None
    dhis2_status = inner_status if inner is not outer and inner_status else outer_status
    stored = (stats["created"] + stats["updated"] + stats["deleted"]) if stats else 0
    common: dict[str, Any] = {
        "http_status": status, "dhis2_status": dhis2_status, "stats": stats,
        "error_reports": tuple(errors), "body": decoded.json,
    }
    uid = inner.get("uid")
    if dhis2_status in ("OK", "SUCCESS") and not errors and status < 300:
        note = f" uid={uid}" if uid else (f" stats={stats}" if stats else "")
        return Outcome(OutcomeKind.DELIVERED, None, message=f"{dhis2_status}{note}", **common)
    if errors or dhis2_status in ("WARNING", "ERROR") or status == 409:
        detail = "; ".join(f"{e['code']}: {e['message']}" for e in errors[:3]) or str(
            outer.get("message") or ""
        )
        if stored > 0:
            return Outcome(OutcomeKind.PARTIAL, "metadata_errors", message=detail, **common)
        if not errors:
            known = transient_outcome(status, web_message_text(decoded), None, decoded.json)
            if known is not None:
                return known
            if looks_transient(detail):
                return Outcome(OutcomeKind.RETRY, "server_error", message=detail, **common)
        return Outcome(OutcomeKind.REJECTED, "metadata_errors", message=detail, **common)
    return web_message_error(status, decoded)
