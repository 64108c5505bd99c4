"""Interpretation of ``POST /api/tracker`` answers and tracker job reports (2.36-2.44).

The sync answer is a bare ``ImportReport`` (never wrapped): HTTP 200 for OK and
WARNING, 409 for ERROR.  The async answer is a WebMessage with
``response.id`` (``responseType: TrackerJob`` except on 2.41).  A job report
(``GET /api/tracker/jobs/{id}/report``) is the same ImportReport with HTTP 200
even for ERROR, and 404 while the job has not finished.

Decisions beyond the DESIGN table (documented for the delivery engine):

* WARNING with nothing ignored -> DELIVERED (reason ``warnings``): tracker
  warnings (e.g. program-rule E1308) do not reject objects, so everything was
  stored, which is what the ``delivered`` state means.  WARNING with ignored
  objects -> PARTIAL.
* ERROR where every error is "already exists" (E1002/E1030/E1080/E4015, only
  possible with importStrategy=CREATE) -> DELIVERED (reason ``already_exists``):
  the objects were stored by an earlier attempt whose answer was lost.
* ERROR where every error is a missing parent (E1063 tracked entity, E1081
  enrollment does not exist) -> RETRY (reason ``missing_parent``): the parent may
  be in another submission not yet delivered; the retry budget bounds it.
* ERROR with created/updated/deleted > 0 (atomicMode=OBJECT) -> PARTIAL; any other
  ERROR -> REJECTED (reason ``validation_errors``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dhis2gw.dhis2.http_rules import (
    DecodedBody,
    decode_body,
    screen_json_answer,
    web_message_error,
    web_message_text,
)
from dhis2gw.dhis2.interpret import (
    interpret_import_summaries,
    interpret_import_summary,
    normalise_stats,
    transient_outcome,
)
from dhis2gw.dhis2.outcome import JobRef, Outcome, OutcomeKind

#: "... already exists" codes: on a retry they mean the earlier attempt was stored.
ALREADY_EXISTS_CODES = frozenset({"E1002", "E1030", "E1080", "E4015"})

#: "... does not exist" codes for a parent that another submission may still deliver.
MISSING_PARENT_CODES = frozenset({"E1063", "E1081"})

TRACKER_JOB_TYPE = "TRACKER_IMPORT_JOB"


def normalise_report(raw: Any, code_key: str = "errorCode") -> dict[str, Any]:
    """One tracker error/warning report as ``{code, message, trackerType, uid, args}``."""
    raw = raw if isinstance(raw, dict) else {"message": str(raw)}
    code = raw.get(code_key) or raw.get("errorCode") or raw.get("warningCode")
    args = raw.get("args") if isinstance(raw.get("args"), list) else []
    return {
        "code": code,
        "message": raw.get("message"),
        "trackerType": raw.get("trackerType"),
        "uid": raw.get("uid"),
        "args": list(args),
    }


def _collect_reports(report: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Errors and warnings from ``validationReport`` and the bundle's object reports, de-duplicated."""
    validation = report.get("validationReport")
    validation = validation if isinstance(validation, dict) else {}
    errors = [normalise_report(r) for r in validation.get("errorReports") or []]
    warnings = [normalise_report(r, "warningCode") for r in validation.get("warningReports") or []]
    bundle = report.get("bundleReport")
    type_map = bundle.get("typeReportMap") if isinstance(bundle, dict) else None
    for type_report in (type_map or {}).values() if isinstance(type_map, dict) else ():
        for obj in (type_report or {}).get("objectReports") or []:
            if isinstance(obj, dict):
                for raw in obj.get("errorReports") or []:
                    error = normalise_report(raw)
                    error["trackerType"] = error["trackerType"] or obj.get("trackerType")
                    error["uid"] = error["uid"] or obj.get("uid")
                    if error not in errors:
                        errors.append(error)
    return errors, warnings


def is_import_report(data: Any) -> bool:
    """True for a tracker ``ImportReport`` (sync answer or job report)."""
    return isinstance(data, dict) and "status" in data and any(
        key in data for key in ("stats", "validationReport", "bundleReport")
    )


def interpret_import_report(report: dict[str, Any], status: int, body_value: Any) -> Outcome:
    """Outcome of one tracker ``ImportReport`` (rules in the module docstring)."""
    dhis2_status = str(report.get("status") or "").upper() or None
    stats = normalise_stats(report.get("stats"))
    errors, warnings = _collect_reports(report)
    stored = stats["created"] + stats["updated"] + stats["deleted"]
    common = {
        "http_status": status,
        "dhis2_status": dhis2_status,
        "stats": stats,
        "error_reports": tuple(errors),
        "warning_reports": tuple(warnings),
        "body": body_value,
    }
    tally = (
        f"created={stats['created']} updated={stats['updated']} deleted={stats['deleted']} "
        f"ignored={stats['ignored']} total={stats['total']}"
    )
    codes = sorted({e["code"] for e in errors if e["code"]})
    detail = "; ".join(f"{e['code']} {e['uid']}: {e['message']}" for e in errors[:3])
    if report.get("message"):
        detail = f"{report['message']}; {detail}".rstrip("; ")
    if dhis2_status == "OK":
        return Outcome(OutcomeKind.DELIVERED, None, message=f"OK {tally}", **common)
    if dhis2_status == "WARNING":
        if stats["ignored"] > 0:
            return Outcome(
                OutcomeKind.PARTIAL, "ignored", message=f"WARNING {tally}", **common
            )
        return Outcome(
            OutcomeKind.DELIVERED, "warnings",
            message=f"WARNING {tally}, {len(warnings)} warning(s)", **common,
        )
    if dhis2_status == "ERROR":
        if stored > 0:
            return Outcome(
                OutcomeKind.PARTIAL, "validation_errors",
                message=f"ERROR {tally} {' '.join(codes)}: {detail}", **common,
            )
        if codes and set(codes) <= ALREADY_EXISTS_CODES:
            return Outcome(
                OutcomeKind.DELIVERED, "already_exists",
                message=f"already stored by an earlier attempt ({' '.join(codes)})", **common,
            )
        if codes and set(codes) <= MISSING_PARENT_CODES:
            return Outcome(
                OutcomeKind.RETRY, "missing_parent",
                message=f"parent not in DHIS2 yet ({' '.join(codes)}): {detail}", **common,
            )
        return Outcome(
            OutcomeKind.REJECTED, "validation_errors",
            message=f"ERROR {tally} {' '.join(codes)}: {detail}".strip(), **common,
        )
    return Outcome(
        OutcomeKind.RETRY, "unrecognised_response",
        message=f"tracker report with unknown status {dhis2_status!r}", **common,
    )


def _tracker_job(outer: dict[str, Any], inner: dict[str, Any]) -> JobRef | None:
    job_id = inner.get("id")
    if not isinstance(job_id, str) or not job_id:
        return None
    location = inner.get("location")
    if (
        inner.get("responseType") == "TrackerJob"
        or (isinstance(location, str) and "/tracker/jobs/" in location)
        or str(outer.get("message") or "").lower().startswith("tracker job added")
    ):
        return JobRef(id=job_id, job_type=TRACKER_JOB_TYPE, location=location)
    return None


def _interpret_json(status: int, decoded: DecodedBody) -> Outcome:
    data = decoded.json
    if is_import_report(data) and "httpStatusCode" not in data:
        return interpret_import_report(data, status, data)
    response = data.get("response")
    if isinstance(response, dict):
        job = _tracker_job(data, response)
        if job is not None:
            return Outcome(
                OutcomeKind.ACCEPTED_ASYNC, "async_job", http_status=status,
                dhis2_status=data.get("status"), job=job, body=data,
                message=str(data.get("message") or f"tracker job {job.id}"),
            )
        if response.get("responseType") == "ImportSummaries":
            return interpret_import_summaries(response, status, data)
        if response.get("responseType") == "ImportSummary" or "importCount" in response:
            return interpret_import_summary(response, status, data, data.get("message"))
        if is_import_report(response):
            return interpret_import_report(response, status, data)
    known = transient_outcome(status, web_message_text(decoded), None, data)
    return known if known is not None else web_message_error(status, decoded)


def interpret_tracker_response(
    status: int,
    headers: Mapping[str, str] | None,
    body: bytes | str | None,
    *,
    now: float | None = None,
) -> Outcome:
    """Interpret the answer to ``POST /api/tracker`` (sync report or async job), any version.

    Also reads the deprecated endpoints' ``ImportSummaries`` WebMessage.
    """
    decoded = decode_body(body)
    return screen_json_answer(status, headers, decoded, now) or _interpret_json(status, decoded)


def interpret_tracker_job_report(
    status: int,
    headers: Mapping[str, str] | None,
    body: bytes | str | None,
    *,
    now: float | None = None,
    job_id: str | None = None,
) -> Outcome:
    """Interpret ``GET /api/tracker/jobs/{id}/report``.

    404 means the job has not finished (or DHIS2 forgot it): PENDING, keep polling
    until the caller's deadline.  200 carries the ImportReport, whatever its status.
    """
    decoded = decode_body(body)
    if status == 404:
        text = decoded.json.get("message") if isinstance(decoded.json, dict) else decoded.excerpt
        job = JobRef(id=job_id, job_type=TRACKER_JOB_TYPE, completed=False) if job_id else None
        return Outcome(
            OutcomeKind.PENDING, "job_report_not_ready", http_status=404,
            body=decoded.body_value, job=job, message=str(text or "job report not ready"),
        )
    return interpret_tracker_response(status, headers, body, now=now)


#: ``lastExecutedStatus`` values of a JobConfiguration that end a job for good.
_JOB_FAILED = frozenset({"FAILED", "ABORTED", "STOPPED"})
_JOB_DONE = frozenset({"COMPLETED"})


def interpret_job_configuration(
    status: int,
    headers: Mapping[str, str] | None,
    body: bytes | str | None,
    *,
    now: float | None = None,
    job: JobRef | None = None,
) -> Outcome:
    """``GET /api/jobConfigurations/{id}?fields=jobStatus,lastExecutedStatus``: the 2.44 fallback.

    2.44 wipes a failed job's notification feed about a second after its last row
    (dhis2w ISS#143), so a poller that saw rows and then ``[]`` asks here.  The answer:

    * ``lastExecutedStatus`` FAILED/ABORTED/STOPPED -> RETRY (reason ``job_failed``): the
      import job died inside DHIS2 and its report is gone; posting again is idempotent;
    * COMPLETED -> PENDING with ``job.completed`` (reason ``job_completed``): read the report;
    * anything else (RUNNING, SCHEDULED, NOT_STARTED) -> PENDING (reason ``job_running``);
    * 404 -> PENDING ``job_unknown`` (DHIS2 never persisted it: a restart or another node).
    """
    decoded = decode_body(body)
    if status == 404:
        return Outcome(
            OutcomeKind.PENDING, "job_unknown", http_status=status, body=decoded.body_value, job=job,
            message="job configuration unknown to DHIS2",
        )
    screened = screen_json_answer(status, headers, decoded, now)
    if screened is not None:
        return screened
    data = decoded.json
    last = str(data.get("lastExecutedStatus") or "").upper()
    state = str(data.get("jobStatus") or "").upper()
    note = f"jobStatus={state or '?'} lastExecutedStatus={last or '?'}"
    if last in _JOB_FAILED:
        return Outcome(
            OutcomeKind.RETRY, "job_failed", http_status=status, body=data, job=job,
            message=f"job {job.id if job else '?'} failed inside DHIS2 and its feed is gone ({note})",
        )
    done = last in _JOB_DONE and state not in ("RUNNING", "SCHEDULED")
    ref = JobRef(job.id, job.job_type, job.location, done, note) if job else None
    return Outcome(
        OutcomeKind.PENDING, "job_completed" if done else "job_running", http_status=status, body=data,
        job=ref, message=note,
    )
