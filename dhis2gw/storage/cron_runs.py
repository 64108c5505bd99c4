"""CronRunStore: the run log of scheduled jobs, which is also their cross-process claim.

A scheduled execution starts by inserting its ``cron_runs`` row with the job's scheduled fire
time (``scheduled_for``). The unique index on (job, scheduled_for) lets exactly one of several
gateway processes insert it: that one runs the job, the others skip. The claim also refuses to
start while another run of the same job is unfinished (and not older than ``stale_after``), so
a long job never overlaps itself across processes either. Serialising the check with a
transaction-level advisory lock keeps it atomic without holding a session lock on a pooled
connection.
"""
from __future__ import annotations

import zlib
from datetime import datetime
from typing import Any

from dhis2gw.storage.database import Database, cursor_fetch, json_param


def _lock_key(job: str) -> int:
    """A stable 32-bit advisory-lock key for a job name."""
    return zlib.crc32(f"dhis2gw.runtime.cron:{job}".encode()) - 2**31


class CronRunStore:
    """SQL for ``cron_runs``."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def claim(self, job: str, scheduled_for: datetime | None, host: str,
                    stale_after: float) -> int | None:
        """Insert the run row and return its id; None when the occurrence or the job is taken."""
        async def insert(cursor: Any) -> int | None:
            await cursor.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key(job),))
            rows = await cursor_fetch(
                cursor,
                "INSERT INTO cron_runs (job, scheduled_for, host) SELECT %s, %s, %s WHERE NOT EXISTS ("
                " SELECT 1 FROM cron_runs WHERE job = %s AND finished_at IS NULL"
                " AND started_at > now() - make_interval(secs => %s))"
                " ON CONFLICT (job, scheduled_for) WHERE scheduled_for IS NOT NULL DO NOTHING RETURNING id",
                (job, scheduled_for, host, job, stale_after))
            return int(rows[0]["id"]) if rows else None

        return await self.db.transaction("cron.claim", insert)

    async def finish(self, run_id: int, outcome: str, detail: Any) -> None:
        """Close a run with its outcome (ok / error) and detail (counts or the error)."""
        await self.db.execute(
            "cron.finish", "UPDATE cron_runs SET finished_at = now(), outcome = %s, detail = %s WHERE id = %s",
            (outcome, json_param(detail), run_id))

    async def last_runs(self) -> dict[str, dict[str, Any]]:
        """The latest run of every job."""
        rows = await self.db.fetch(
            "cron.last",
            "SELECT DISTINCT ON (job) id, job, scheduled_for, started_at, finished_at, outcome, detail, host"
            " FROM cron_runs ORDER BY job, started_at DESC, id DESC")
        return {r["job"]: r for r in rows}

    async def runs(self, job: str, limit: int = 20) -> list[dict[str, Any]]:
        """The latest ``limit`` runs of one job, newest first."""
        return await self.db.fetch(
            "cron.runs",
            "SELECT id, job, scheduled_for, started_at, finished_at, outcome, detail, host FROM cron_runs"
            " WHERE job = %s ORDER BY started_at DESC, id DESC LIMIT %s", (job, limit))
