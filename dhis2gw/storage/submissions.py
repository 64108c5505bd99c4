"""SubmissionStore: every write that moves a submission through its states.

Each transition updates the row and inserts its ``submission_events`` row in ONE transaction.
Attempts carry a random ``lease_owner`` token: only the attempt holding the token may record an
outcome, so a worker that lost its lease (paused, partitioned) can never overwrite the result of
the worker that took over.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg2

from dhis2gw.storage.database import Database, cursor_fetch, json_param
from dhis2gw.storage.statuses import DELIVERED, FINAL_STATES, PENDING_STATES, REQUEUEABLE, sql_list

_PENDING_SQL = sql_list(PENDING_STATES)

# The columns a submission row is returned with (no payloads: those are fetched on demand).
SUMMARY_COLUMNS = (
    "id, uid, kind, destination, submitter_id, endpoint, idempotency_key, status, attempts, job_failures,"
    " next_attempt_at, created_at, updated_at, last_attempt_at, finished_at, http_status, import_count,"
    " value_count, error, dhis2_job_id, org_unit, period, data_set"
)


def request_hash(body: Any) -> str:
    """A stable hash of a request body (key order does not matter)."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def follow_up_key(prefix: str, uid: str, attempts: int) -> str:
    """The idempotency key of the follow-up submission (e.g. a callback) of one final outcome.

    ``<prefix><uid>:<attempts>``: one follow-up per final outcome, whoever creates it first; a
    requeued submission's next final outcome has another attempt count, so it gets its own.
    ``SubmissionStore.finished_without_follow_up`` builds the same key in SQL.
    """
    return f"{prefix}{uid}:{attempts}"


def utc(seconds: float) -> datetime:
    """A clock reading as an aware UTC datetime (for columns the clock decides)."""
    return datetime.fromtimestamp(seconds, tz=UTC)


class IdempotencyConflict(Exception):
    """The same Idempotency-Key was used with a different body."""

    def __init__(self, existing_id: int) -> None:
        super().__init__(existing_id)
        self.existing_id = existing_id


@dataclass(frozen=True)
class NewSubmission:
    """What ingest records."""

    uid: str
    kind: str
    destination: str
    submitter_id: int | None
    endpoint: str
    payload: Any
    dhis2_payload: Any
    import_params: dict[str, str]
    value_count: int
    idempotency_key: str | None = None
    request_id: str | None = None


@dataclass(frozen=True)
class Created:
    """Result of ``create``: the row, and whether it already existed (idempotent repeat)."""

    row: dict[str, Any]
    existing: bool


async def _event(cursor: Any, submission_id: int, event: str, status: str | None = None, *,
                 attempt: int | None = None, destination: str | None = None,
                 http_status: int | None = None, duration_ms: int | None = None,
                 detail: str | None = None, actor: str | None = None) -> None:
    await cursor.execute(
        "INSERT INTO submission_events (submission_id, event, status, attempt, destination, http_status,"
        " duration_ms, detail, actor) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (submission_id, event, status, attempt, destination, http_status, duration_ms,
         (detail or "")[:1000] or None, actor))


class SubmissionStore:
    """SQL for submissions and their events."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # --- ingest ------------------------------------------------------------------------
    async def create(self, new: NewSubmission) -> Created:
        """Insert a queued submission and its ``queued`` event; honour the idempotency key.

        One statement (the row and its event in a data-modifying CTE) is one round trip and
        still atomic; only an idempotent repeat needs a second query.
        """
        digest = request_hash(new.payload)
        rows = await self.db.fetch(
            "submission.create",
            "WITH s AS (INSERT INTO submissions (uid, kind, destination, submitter_id, endpoint, idempotency_key,"
            " request_hash, payload, dhis2_payload, import_params, value_count, request_id)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (submitter_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING"
            f" RETURNING {SUMMARY_COLUMNS}),"
            " e AS (INSERT INTO submission_events (submission_id, event, status, destination)"
            " SELECT id, 'queued', 'queued', destination FROM s)"
            " SELECT * FROM s",
            (new.uid, new.kind, new.destination, new.submitter_id, new.endpoint, new.idempotency_key,
             digest, json_param(new.payload), json_param(new.dhis2_payload), json_param(new.import_params),
             new.value_count, new.request_id))
        if rows:
            return Created(rows[0], existing=False)
        existing = await self.db.fetch_one(
            "submission.idempotent_repeat", f"SELECT {SUMMARY_COLUMNS}, request_hash FROM submissions"
            " WHERE submitter_id IS NOT DISTINCT FROM %s AND idempotency_key = %s",
            (new.submitter_id, new.idempotency_key))
        if existing is None:  # the key's row vanished between the two statements (purged): try again
            return await self.create(new)
        if existing.pop("request_hash") != digest:
            raise IdempotencyConflict(existing["id"])
        return Created(existing, existing=True)

    # --- reads -------------------------------------------------------------------------
    async def get(self, submission_id: int, with_payloads: bool = True) -> dict[str, Any] | None:
        """One submission (with payloads, response and conflicts when asked)."""
        extra = ", payload, dhis2_payload, import_params, response, conflicts, lease_owner" if with_payloads else ""
        return await self.db.fetch_one("submission.get", f"SELECT {SUMMARY_COLUMNS}{extra} FROM submissions"
                                       " WHERE id = %s", (submission_id,))

    async def events(self, submission_id: int) -> list[dict[str, Any]]:
        """The events timeline of one submission, oldest first."""
        return await self.db.fetch(
            "submission.events",
            "SELECT at, event, status, attempt, destination, http_status, duration_ms, detail, actor"
            " FROM submission_events WHERE submission_id = %s ORDER BY id", (submission_id,))

    async def counts_by_status(self) -> dict[str, int]:
        """Number of submissions per status."""
        rows = await self.db.fetch("submission.counts", "SELECT status, count(*) AS n FROM submissions GROUP BY status")
        return {r["status"]: int(r["n"]) for r in rows}

    async def finished_without_follow_up(self, follow_up_kind: str, key_prefix: str, *, payload_field: str,
                                         submitter_ids: Sequence[int], window_seconds: float,
                                         grace_seconds: float, after_id: int = 0,
                                         limit: int = 500) -> list[dict[str, Any]]:
        """Final submissions that should have a follow-up of ``follow_up_kind`` and have none.

        A row qualifies when it is final, not itself of ``follow_up_kind``, was created within the
        last ``window_seconds`` and finished more than ``grace_seconds`` ago (the normal path has
        had its chance), its payload has ``payload_field`` or its submitter is one of
        ``submitter_ids``, and no submission of ``follow_up_kind`` by the same submitter has the
        idempotency key ``follow_up_key(key_prefix, uid, attempts)``. At most ``limit`` rows with
        ``id > after_id``, in id order (keyset pages); columns id, uid, kind, destination,
        submitter_id, status, attempts, http_status, payload.
        """
        return await self.db.fetch(
            "submission.finished_without_follow_up",
            "SELECT s.id, s.uid, s.kind, s.destination, s.submitter_id, s.status, s.attempts, s.http_status,"
            " s.payload FROM submissions s WHERE s.status IN " + sql_list(FINAL_STATES) +
            " AND s.kind <> %s AND s.created_at > now() - make_interval(secs => %s)"
            " AND s.finished_at < now() - make_interval(secs => %s) AND s.id > %s"
            " AND (s.payload ? %s OR s.submitter_id = ANY(%s))"
            " AND NOT EXISTS (SELECT 1 FROM submissions c WHERE c.kind = %s"
            " AND c.submitter_id IS NOT DISTINCT FROM s.submitter_id"
            " AND c.idempotency_key = %s || s.uid || ':' || s.attempts)"
            " ORDER BY s.id LIMIT %s",
            (follow_up_kind, window_seconds, grace_seconds, after_id, payload_field, list(submitter_ids),
             follow_up_kind, key_prefix, limit))

    # --- delivery ----------------------------------------------------------------------
    async def start_attempt(self, submission_id: int, token: str, destination: str) -> dict[str, Any] | None:
        """Take a submission for an attempt; None when it is final (just ack it). One round trip."""
        return await self.db.fetch_one(
            "submission.start_attempt",
            "WITH u AS (UPDATE submissions SET status = 'processing', attempts = attempts + 1, lease_owner = %s,"
            " last_attempt_at = now(), updated_at = now()"
            f" WHERE id = %s AND status IN {_PENDING_SQL}"
            f" RETURNING {SUMMARY_COLUMNS}, dhis2_payload, import_params, payload),"
            " e AS (INSERT INTO submission_events (submission_id, event, status, attempt, destination)"
            " SELECT id, 'processing', 'processing', attempts, %s FROM u)"
            " SELECT * FROM u",
            (token, submission_id, destination))

    async def start_attempts(self, submission_ids: Sequence[int], token: str,
                             destination: str) -> list[dict[str, Any]]:
        """``start_attempt`` for several ids in one statement (aggregate batches); final ones are absent."""
        if not submission_ids:
            return []
        return await self.db.fetch(
            "submission.start_attempts",
            "WITH u AS (UPDATE submissions SET status = 'processing', attempts = attempts + 1, lease_owner = %s,"
            " last_attempt_at = now(), updated_at = now()"
            f" WHERE id = ANY(%s) AND status IN {_PENDING_SQL}"
            f" RETURNING {SUMMARY_COLUMNS}, dhis2_payload, import_params, payload),"
            " e AS (INSERT INTO submission_events (submission_id, event, status, attempt, destination)"
            " SELECT id, 'processing', 'processing', attempts, %s FROM u)"
            " SELECT * FROM u ORDER BY id",
            (token, list(submission_ids), destination))

    async def save_job(self, submission_id: int, token: str, job_id: str) -> bool:
        """Persist the DHIS2 async job being polled (a restart resumes polling it)."""
        rows = await self.db.fetch(
            "submission.save_job",
            "UPDATE submissions SET dhis2_job_id = %s, updated_at = now() WHERE id = %s AND lease_owner = %s"
            " RETURNING id", (job_id, submission_id, token))
        return bool(rows)

    async def record(self, submission_id: int, token: str, status: str, *, event: str,
                     attempt: int | None = None, destination: str | None = None,
                     http_status: int | None = None, duration_ms: int | None = None,
                     response: Any = None, import_count: Any = None, conflicts: Any = None,
                     error: str | None = None, next_attempt_at: datetime | None = None,
                     spent_retry: bool = False, detail: str | None = None,
                     keep_response: bool = True) -> bool:
        """Record the outcome of an attempt held by ``token``; False if the lease was lost.

        The row update and its event are one statement (atomic, one round trip).
        """
        final = status in FINAL_STATES
        rows = await self.db.fetch(
            f"submission.record.{event}",
            "WITH u AS (UPDATE submissions SET status = %s, updated_at = now(),"
            " finished_at = CASE WHEN %s THEN now() ELSE NULL END,"
            " next_attempt_at = %s, job_failures = job_failures + %s,"
            " http_status = coalesce(%s, http_status),"
            " response = CASE WHEN %s THEN %s ELSE response END,"
            " import_count = coalesce(%s, import_count), conflicts = coalesce(%s, conflicts),"
            " error = %s, lease_owner = CASE WHEN %s THEN lease_owner ELSE NULL END,"
            " dhis2_job_id = CASE WHEN %s THEN NULL ELSE dhis2_job_id END"
            " WHERE id = %s AND lease_owner = %s RETURNING id),"
            " e AS (INSERT INTO submission_events (submission_id, event, status, attempt, destination, http_status,"
            " duration_ms, detail) SELECT id, %s, %s, %s, %s, %s, %s, %s FROM u)"
            " SELECT id FROM u",
            (status, final, next_attempt_at, 1 if spent_retry else 0, http_status,
             keep_response and response is not None, json_param(response),
             json_param(import_count) if import_count is not None else None,
             json_param(conflicts) if conflicts is not None else None,
             error, status == "processing", final, submission_id, token,
             event, status, attempt, destination, http_status, duration_ms,
             ((detail or error) or "")[:1000] or None))
        return bool(rows)

    # --- reconciliation ------------------------------------------------------------------
    async def pending(self, after_id: int, limit: int) -> list[dict[str, Any]]:
        """Non-final rows (queued, retrying, processing) in id order, for the reconciler."""
        return await self.db.fetch(
            "submission.pending",
            "SELECT id, destination, status, next_attempt_at, lease_owner FROM submissions"
            f" WHERE status IN {_PENDING_SQL} AND id > %s ORDER BY id LIMIT %s",
            (after_id, limit))

    async def reset_processing(self, ids: Sequence[int], event: str, detail: str) -> list[int]:
        """Put 'processing' rows whose attempt is gone back to 'queued' (with an event each)."""
        if not ids:
            return []

        async def reset(cursor: Any) -> list[int]:
            rows = await cursor_fetch(
                cursor,
                "UPDATE submissions SET status = 'queued', lease_owner = NULL, updated_at = now()"
                " WHERE id = ANY(%s) AND status = 'processing' RETURNING id, destination",
                (list(ids),))
            for row in rows:
                await _event(cursor, row["id"], event, "queued", destination=row["destination"], detail=detail)
            return [r["id"] for r in rows]

        return await self.db.transaction("submission.reset_processing", reset)

    async def add_events(self, ids: Iterable[int], event: str, detail: str) -> None:
        """Add the same event (e.g. lease_expired) to several submissions."""
        id_list = list(ids)
        if not id_list:
            return
        await self.db.execute(
            "submission.add_events",
            "INSERT INTO submission_events (submission_id, event, detail, destination)"
            " SELECT id, %s, %s, destination FROM submissions WHERE id = ANY(%s)", (event, detail, id_list))

    # --- requeue -----------------------------------------------------------------------
    async def requeue(self, ids: Sequence[int], actor: str, force: bool = False) -> list[dict[str, Any]]:
        """Move requeueable rows among ``ids`` back to 'queued'; return (id, destination) of those moved.

        ``attempts`` is NOT reset: attempt numbers count every attempt of the submission's whole
        life, so the trail after a requeue goes on at the next number and keeps every earlier
        attempt. Only ``job_failures`` (the retry budget) starts again. The ``requeued`` event
        records how many attempts had been made.
        """
        states = list(REQUEUEABLE) + ([DELIVERED] if force else [])

        async def move(cursor: Any) -> list[dict[str, Any]]:
            rows = await cursor_fetch(
                cursor,
                "UPDATE submissions SET status = 'queued', job_failures = 0, next_attempt_at = NULL,"
                " finished_at = NULL, lease_owner = NULL, error = NULL, dhis2_job_id = NULL, updated_at = now()"
                " WHERE id = ANY(%s) AND status = ANY(%s) RETURNING id, destination",
                (list(ids), states))
            if rows:
                await cursor.execute(
                    "INSERT INTO submission_events (submission_id, event, status, destination, actor, detail)"
                    " SELECT id, 'requeued', 'queued', destination, %s,"
                    " 'requeued after ' || attempts || ' attempt(s)' FROM submissions WHERE id = ANY(%s)",
                    (actor, [r["id"] for r in rows]))
            return rows

        return await self.db.transaction("submission.requeue", move)

    async def ids_matching(self, where_sql: str, params: Sequence[Any], after_id: int, limit: int) -> list[int]:
        """Ids of rows matching a filter built by the logs query builder (keyset pagination)."""
        rows = await self.db.fetch(
            "submission.ids_matching",
            f"SELECT id FROM submissions WHERE ({where_sql}) AND id > %s ORDER BY id LIMIT %s",
            (*params, after_id, limit))
        return [r["id"] for r in rows]


def is_unique_violation(error: BaseException) -> bool:
    """True for a PostgreSQL unique-constraint violation."""
    return isinstance(error, psycopg2.IntegrityError) and getattr(error, "pgcode", None) == "23505"
