"""JSON schemas of the operations API's bodies and answers (they feed the OpenAPI document)."""
from __future__ import annotations

from typing import Any

from dhis2gw.storage.statuses import FINAL_STATES, PENDING_STATES, STATUSES

_TS = {"type": ["string", "null"], "format": "date-time"}
_INT_OR_NULL = {"type": ["integer", "null"]}
_STR_OR_NULL = {"type": ["string", "null"]}

LOG_ITEM: dict[str, Any] = {
    "type": "object",
    "required": ["id", "uid", "kind", "destination", "status", "created_at"],
    "properties": {
        "id": {"type": "integer"}, "uid": {"type": "string"}, "kind": {"type": "string"},
        "destination": {"type": "string"}, "submitter_id": _INT_OR_NULL, "endpoint": {"type": "string"},
        "idempotency_key": _STR_OR_NULL, "status": {"type": "string", "enum": list(STATUSES)},
        "attempts": {"type": "integer"}, "job_failures": {"type": "integer"}, "next_attempt_at": _TS,
        "created_at": {"type": "string", "format": "date-time"}, "updated_at": _TS, "last_attempt_at": _TS,
        "finished_at": _TS, "http_status": _INT_OR_NULL, "import_count": {"type": ["object", "null"]},
        "value_count": {"type": "integer"}, "error": _STR_OR_NULL, "dhis2_job_id": _STR_OR_NULL,
        "submitted_at": {"type": "string", "format": "date-time", "description": "Original's name of created_at."},
        "task_id": {"type": "string", "description": "Original's name: the submission id as text."},
        "retry_count": {"type": "integer", "description": "Original's name: retries spent (job_failures)."},
        "org_unit": _STR_OR_NULL, "org_unit_code": _STR_OR_NULL, "org_unit_name": _STR_OR_NULL,
        "period": _STR_OR_NULL, "data_set": _STR_OR_NULL,
        "submitter": {"type": ["string", "null"], "description": "The submitter's username."},
        "reason": {"type": ["string", "null"], "description": "The error with the human reason first"
                                                              " (DHIS2's counters last)."},
        "payload": {}, "dhis2_payload": {},
    },
}

LOG_PAGE: dict[str, Any] = {
    "type": "object",
    "required": ["items", "page", "page_size"],
    "properties": {
        "items": {"type": "array", "items": LOG_ITEM},
        "total": _INT_OR_NULL, "page": {"type": "integer"}, "page_size": {"type": "integer"},
        "total_pages": _INT_OR_NULL, "next_cursor": _STR_OR_NULL, "filter": {"type": "object"},
        "timezone": {"type": "string", "description": "The gateway's time zone; every time is in it."},
        "total_exact": {"type": "boolean", "description": "False when more than 100,000 rows match (1,000"
                                                          " with q): total is then PostgreSQL's estimate."},
    },
}

EVENT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "at": {"type": "string", "format": "date-time"}, "event": {"type": "string"}, "status": _STR_OR_NULL,
        "attempt": _INT_OR_NULL, "destination": _STR_OR_NULL, "http_status": _INT_OR_NULL,
        "duration_ms": _INT_OR_NULL, "detail": _STR_OR_NULL, "actor": _STR_OR_NULL,
    },
}

LOG_DETAIL: dict[str, Any] = {
    "type": "object",
    "required": ["id", "status", "payload", "events", "attempts_detail", "errors"],
    "properties": {
        **LOG_ITEM["properties"],
        "import_params": {"type": ["object", "null"]}, "response": {}, "conflicts": {"type": ["array", "null"]},
        "errors": {"type": "array", "items": {"type": "object"}},
        "attempts_detail": {"type": "array", "items": {"type": "object"}},
        "events": {"type": "array", "items": EVENT},
        "names": {"type": "object", "description": "code and name of each UID of dhis2_payload the gateway knows",
                  "additionalProperties": {"type": "object"}},
    },
}

_STATUS_COUNTS = {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0},
                  "required": list(PENDING_STATES + FINAL_STATES)}
LOG_STATS: dict[str, Any] = {
    "type": "object",
    "required": ["windows"],
    "properties": {
        "windows": {"type": "object", "required": ["24h", "7d"], "properties": {"24h": _STATUS_COUNTS,
                                                                              "7d": _STATUS_COUNTS}},
    },
}

REQUEUE_COUNTS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "matched": {"type": "integer"}, "scanned": {"type": "integer"}, "requeued": {"type": "integer"},
        "enqueued": {"type": "integer"}, "skipped": {"type": "integer"}, "not_pushed": {"type": "integer"},
        "job_id": _STR_OR_NULL, "status_url": _STR_OR_NULL, "ids": {"type": "array", "items": {"type": "integer"}},
    },
}

REQUEUE_BODY: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "ids": {"type": "array", "items": {"type": ["integer", "string"]}, "minItems": 1, "maxItems": 100000},
        "filter": {"type": "object", "minProperties": 1,
                   "description": "The same names as the GET /logs query (status, kind, endpoint, user,"
                                  " destination, id, from, to, q, …); values are strings or arrays."},
        "force": {"type": "boolean", "description": "Also requeue delivered submissions."},
    },
    "oneOf": [{"required": ["ids"], "not": {"required": ["filter"]}},
              {"required": ["filter"], "not": {"required": ["ids"]}}],
    "examples": [{"filter": {"status": ["failed", "rejected"], "from": "2024-03-01"}},
                 {"ids": [101, 102], "force": False}],
}

REQUEUE_JOB: dict[str, Any] = {
    "type": "object",
    "required": ["id", "status"],
    "properties": {
        "id": {"type": "string"}, "actor": {"type": "string"}, "selection": {"type": "object"},
        "force": {"type": "boolean"},
        "status": {"type": "string", "enum": ["running", "done", "failed", "interrupted"]},
        "matched": {"type": "integer"}, "scanned": {"type": "integer"}, "requeued": {"type": "integer"},
        "enqueued": {"type": "integer"}, "error": _STR_OR_NULL, "created_at": _TS, "updated_at": _TS,
        "finished_at": _TS, "progress": {"type": "number"},
    },
}

REQUEUE_ONE: dict[str, Any] = {
    "type": "object",
    "properties": {"id": {"type": "integer"}, "status": {"type": "string"}, "requeued": {"type": "boolean"},
                   "enqueued": {"type": "boolean"}, "message": {"type": "string"}},
}

BATCH_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["task_ids"],
    "properties": {"task_ids": {"type": "array", "items": {"type": ["string", "integer"]}, "maxItems": 100000},
                   "queue": {"type": "string", "description": "Ignored (the original's Asynq queue)."},
                   "force": {"type": "boolean"}},
    "examples": [{"task_ids": ["101", "102"]}],
}

BATCH_RESULT: dict[str, Any] = {
    "type": "object",
    "properties": {"queue": {"type": "string"}, "reEnqueued": {"type": "integer"}, "failed": {"type": "integer"},
                   "errors": {"type": "array", "items": {"type": "string"}}},
}

DELETED: dict[str, Any] = {
    "type": "object",
    "properties": {"message": {"type": "string"}, "id": {"type": "integer"}, "deleted": {"type": "integer"},
                   "dry_run": {"type": "boolean"}, "before": {"type": "string"},
                   "statuses": {"type": "array", "items": {"type": "string"}}},
}

QUEUE_DESTINATION: dict[str, Any] = {
    "type": "object",
    "required": ["destination", "paused"],
    "properties": {
        "destination": {"type": "string"}, "url": _STR_OR_NULL, "ready": _INT_OR_NULL, "processing": _INT_OR_NULL,
        "delayed": _INT_OR_NULL, "waiting_rows": {"type": "integer"},
        "oldest_waiting_at": _TS, "oldest_waiting_seconds": {"type": ["number", "null"]},
        "in_flight": _INT_OR_NULL, "paused": {"type": ["boolean", "null"]},
        "breaker": {"type": ["object", "null"], "properties": {
            "state": {"type": "string"}, "reason": _STR_OR_NULL, "since": _TS,
            "consecutive_failures": {"type": "integer"}, "opened_count": {"type": "integer"}}},
    },
}

QUEUE_STATUS: dict[str, Any] = {
    "type": "object",
    "required": ["destinations"],
    "properties": {"destinations": {"type": "array", "items": QUEUE_DESTINATION},
                   "redis": {"type": "boolean"},
                   "gateway": {"type": "object", "description": "which gateway answers: name, version, time zone",
                               "properties": {"name": {"type": "string"}, "version": {"type": "string"},
                                              "timezone": {"type": "string"}}}},
}
