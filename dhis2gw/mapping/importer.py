"""Mapping import: validate rows, plan and apply an upsert, and run it as a job with progress.

One import is one PostgreSQL transaction worked in chunks (rows are streamed from the sheet,
so memory stays flat whatever the file size). Per row: the columns are validated
(:func:`dhis2gw.mapping.rows.row_errors`) and a key already seen in the file is a duplicate
error. By default the import is all-or-nothing: any row error rolls everything back (the report
still gives every error and the counts the import would have had). ``partial`` keeps the valid
rows; ``dry_run`` always rolls back. Counts: ``inserted``, ``updated`` (changed), ``unchanged``,
``rejected``.
"""
from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from twisted.logger import Logger

from dhis2gw.dhis2.uids import generate_uid
from dhis2gw.mapping.rows import COLUMNS, complete, key_text, row_errors, row_key
from dhis2gw.mapping.sheets import Sheet, SheetRejected
from dhis2gw.storage.database import Database
from dhis2gw.storage.mappings import MappingAdminStore

CHUNK_ROWS = 1000
MAX_LISTED_ERRORS = 1000
JOBS_KEPT = 50


class _RollBack(Exception):
    """Raised inside the import transaction to roll it back (errors or dry run)."""


@dataclass
class ImportJob:
    """One import and its progress (what ``GET /mappings/imports/<id>`` shows)."""

    id: str
    kind: str
    started_at: float
    state: str = "running"          # running | done | failed
    rows_total: int | None = None
    rows_done: int = 0
    finished_at: float | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    progress_log: list[tuple[int, int | None]] = field(default_factory=list)

    def snapshot(self) -> dict[str, Any]:
        """JSON view of the job."""
        out: dict[str, Any] = {"job_id": self.id, "kind": self.kind, "state": self.state,
                               "rows_done": self.rows_done, "rows_total": self.rows_total,
                               "started_at": self.started_at, "finished_at": self.finished_at}
        if self.rows_total:
            out["percent"] = round(100.0 * min(self.rows_done, self.rows_total) / self.rows_total, 1)
        if self.result is not None:
            out["result"] = self.result
        if self.error is not None:
            out["error"] = self.error
        return out


class MappingImporter:
    """Runs imports against the database and keeps the recent jobs (also mirrored to Redis)."""

    log = Logger()

    def __init__(self, db: Database, clock: Any, redis: Any = None, prefix: str = "dhis2gw",
                 on_change: Callable[[], Awaitable[None]] | None = None, chunk_rows: int = CHUNK_ROWS) -> None:
        self.db = db
        self.clock = clock
        self.redis = redis
        self.prefix = prefix
        self.on_change = on_change
        self.chunk_rows = chunk_rows
        self.store = MappingAdminStore(db)
        self.jobs: dict[str, ImportJob] = {}

    # --- jobs ----------------------------------------------------------------------------
    def new_job(self, kind: str) -> ImportJob:
        """Register a job (the oldest finished ones are forgotten)."""
        job = ImportJob(generate_uid(), kind, self.clock.seconds())
        self.jobs[job.id] = job
        while len(self.jobs) > JOBS_KEPT:
            oldest = next((j for j in self.jobs.values() if j.state != "running"), None)
            if oldest is None:
                break
            del self.jobs[oldest.id]
        return job

    async def job(self, job_id: str) -> dict[str, Any] | None:
        """A job's snapshot: from this process, else from Redis (another API process ran it)."""
        job = self.jobs.get(job_id)
        if job is not None:
            return job.snapshot()
        if self.redis is None:
            return None
        try:
            raw = await self.redis.call("GET", self._job_key(job_id))
        except Exception:  # noqa: BLE001 - Redis down: the job is simply not known here
            return None
        return json.loads(raw) if raw else None

    def _job_key(self, job_id: str) -> str:
        return f"{self.prefix}:mappings:import:{job_id}"

    async def _publish(self, job: ImportJob) -> None:
        if self.redis is None:
            return
        try:
            await self.redis.call("SET", self._job_key(job.id), json.dumps(job.snapshot(), default=str), "EX", 3600,
                                  timeout=1.0)
        except Exception:  # noqa: BLE001 - progress mirroring is best effort
            pass

    # --- the import ---------------------------------------------------------------------
    async def run(self, job: ImportJob, sheet: Sheet, partial: bool = False, dry_run: bool = False) -> dict[str, Any]:
        """Import ``sheet``; the job's state and result are updated as it goes."""
        job.rows_total = sheet.total
        report: dict[str, Any] = {
            "job_id": job.id, "dry_run": dry_run, "partial": partial, "applied": False,
            "counts": {"inserted": 0, "updated": 0, "unchanged": 0, "rejected": 0},
            "rows": 0, "errors": [], "errors_truncated": False, "ignored_columns": sheet.ignored_columns,
        }
        if sheet.sheet_name is not None:
            report["sheet"] = sheet.sheet_name
            report["sheets"] = sheet.sheets
        try:
            await self.db.transaction("mappings.import", lambda cursor: self._work(cursor, job, sheet, report,
                                                                                   partial, dry_run))
            report["applied"] = True
        except _RollBack:
            pass
        except SheetRejected as e:
            job.state, job.finished_at = "failed", self.clock.seconds()
            job.error = {"status": e.status, "code": e.code, "message": e.message, "details": e.details}
            await self._publish(job)
            raise
        except Exception as e:
            job.state, job.finished_at = "failed", self.clock.seconds()
            job.error = {"status": 503 if "Unavailable" in type(e).__name__ else 500, "code": "import_failed",
                         "message": str(e) or type(e).__name__}
            await self._publish(job)
            raise
        job.rows_total = report["rows"]
        job.state, job.finished_at, job.result = "done", self.clock.seconds(), report
        await self._publish(job)
        if report["applied"] and (report["counts"]["inserted"] or report["counts"]["updated"]):
            if self.on_change is not None:
                await self.on_change()
        self.log.info("Mapping import {job}: {counts} ({rows} rows, applied={applied})", job=job.id,
                      counts=report["counts"], rows=report["rows"], applied=report["applied"])
        return report

    async def _work(self, cursor: Any, job: ImportJob, sheet: Sheet, report: dict[str, Any], partial: bool,
                    dry_run: bool) -> None:
        counts, errors = report["counts"], report["errors"]
        seen: dict[tuple[str, str, str, str], int] = {}
        chunk: list[dict[str, str]] = []

        async def flush() -> None:
            inserted, updated = await self.store.upsert_chunk(cursor, [generate_uid() for _ in chunk], chunk)
            counts["inserted"] += inserted
            counts["updated"] += updated
            counts["unchanged"] += len(chunk) - inserted - updated
            chunk.clear()

        for number, raw in sheet.rows:
            report["rows"] += 1
            row = raw if len(raw) == len(COLUMNS) else complete(raw)
            problems = row_errors(row, number)
            if not problems:
                key = row_key(row)
                first = seen.get(key)
                if first is not None:
                    problems = [{"row": number, "column": "code",
                                 "message": f"duplicate key {key_text(key)!r} (code/source_name/instance_name/what)"
                                            f" also on row {first}"}]
                else:
                    seen[key] = number
            if problems:
                counts["rejected"] += 1
                for problem in problems:
                    if len(errors) < MAX_LISTED_ERRORS:
                        errors.append(problem)
                    else:
                        report["errors_truncated"] = True
            else:
                chunk.append(row)
            if len(chunk) >= self.chunk_rows:
                await flush()
            if report["rows"] % self.chunk_rows == 0:
                job.rows_done = report["rows"]
                job.progress_log.append((job.rows_done, job.rows_total))
                await self._publish(job)
        await flush()
        job.rows_done = report["rows"]
        job.progress_log.append((job.rows_done, job.rows_total))
        if dry_run or (counts["rejected"] and not partial):
            raise _RollBack()
