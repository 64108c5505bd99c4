"""The submission log store: the filtered ``/logs`` query, single-row delete, purge and requeue jobs.

What to select is `dhis2gw.storage.log_filter` (``LogFilter``, ``Page``, ``where_clause``; importable
from here as well). Listing is ``ORDER BY <sort>, id`` on columns with indexes (see migrations 0001
and 0002), with an exact ``total`` and either page/offset or a keyset ``cursor`` (the last row's
sort value and id) that stays fast on deep pages.

Only final rows (delivered, partial, rejected, failed) can be deleted or purged; the status
test is in the DELETE statement itself, so a row requeued between "count" and "delete" is
never touched.
"""
from __future__ import annotations

import builtins
import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from twisted.internet import defer

from dhis2gw.storage.database import Database, cursor_fetch, json_param
from dhis2gw.storage.log_filter import SORT_COLUMNS, LogFilter, LogPage, Page, like_escape, where_clause
from dhis2gw.storage.statuses import FINAL_STATES, PENDING_STATES, QUEUED, RETRYING, sql_list
from dhis2gw.storage.submissions import SUMMARY_COLUMNS

__all__ = ["PURGE_CHUNK", "SORT_COLUMNS", "LogFilter", "LogPage", "LogStore", "Page", "selection_json",
           "where_clause"]

PURGE_CHUNK = 5000


def _plan_rows(plan_row: dict[str, Any] | None) -> float:
    """The top node's estimated rows from an ``EXPLAIN (FORMAT JSON)`` result row."""
    if not plan_row:
        return 0
    plan = next(iter(plan_row.values()))
    plan = json.loads(plan) if isinstance(plan, str) else plan
    return float(plan[0]["Plan"]["Plan Rows"])


class LogStore:
    """Reads and deletes for the operations API (writes that move states stay in SubmissionStore)."""

    def __init__(self, db: Database, count_cap: int = 100_000, text_count_cap: int = 1000) -> None:
        self.db = db
        self.count_cap = count_cap
        self.text_count_cap = text_count_cap

    # --- list ----------------------------------------------------------------------------
    async def resolve(self, f: LogFilter) -> LogFilter:
        """``f`` with org-unit codes (and, for ``q``, codes and name words) resolved to UIDs."""
        if not f.org_units and not f.q:
            return f
        text = (f.q or "").strip()
        rows = await self.db.fetch(
            "logs.resolve_org_units",
            "SELECT 'f' AS t, uid::text AS uid FROM organisation_units WHERE code = ANY(%s)"
            " UNION ALL (SELECT 'q', uid::text FROM organisation_units WHERE %s AND (code = %s OR name ILIKE %s)"
            " LIMIT 500)", (list(f.org_units), bool(text), text, "%" + like_escape(text) + "%"))
        found = [r["uid"].strip() for r in rows if r["t"] == "f"]
        return replace(f, org_unit_uids=(tuple(dict.fromkeys([*f.org_units, *found])) if f.org_units else None),
                       q_org_units=(tuple(r["uid"].strip() for r in rows if r["t"] == "q") if text else None))

    async def list(self, f: LogFilter, page: Page, with_payloads: bool = False) -> LogPage:
        """One page of submissions matching ``f``, newest first by default, and the total."""
        f = await self.resolve(f)

        where, params = where_clause(f)
        column = SORT_COLUMNS[page.sort]
        direction = "DESC" if page.descending else "ASC"
        order = f"{column} {direction}, id {direction}" if column != "id" else f"id {direction}"
        keyset = ""
        key_params: list[Any] = []
        offset = (page.page - 1) * page.page_size
        if page.after is not None:
            op = "<" if page.descending else ">"
            keyset = f" AND ({column}, id) {op} (%s, %s)" if column != "id" else f" AND id {op} %s"
            key_params = list(page.after) if column != "id" else [page.after[1]]
            offset = 0
        extra = ", payload, dhis2_payload" if with_payloads else ""
        rows_q = defer.Deferred.fromCoroutine(self.db.fetch(
            "logs.list",
            f"SELECT {SUMMARY_COLUMNS}{extra}, {column} AS sort_key FROM submissions"
            f" WHERE ({where}){keyset} ORDER BY {order} LIMIT %s OFFSET %s",
            (*params, *key_params, page.page_size + 1, offset)))
        total: int | None = None
        exact = True
        if page.with_total:
            # Count and page run on two pool connections at once: the answer waits for the slower.
            # A text search may match rows spread over the whole table: count fewer of them exactly.
            cap = min(self.count_cap, self.text_count_cap) if f.q else self.count_cap
            count_q = defer.Deferred.fromCoroutine(self._bounded_count(where, params, cap))
            rows_and_count: builtins.list[Any] = await defer.gatherResults([rows_q, count_q], consumeErrors=True)
            rows, (total, exact) = rows_and_count
        else:
            rows = await rows_q
        has_more = len(rows) > page.page_size
        rows = rows[:page.page_size]
        last_key = (rows[-1]["sort_key"], rows[-1]["id"]) if rows else None
        for row in rows:
            row.pop("sort_key", None)
        await self.describe(rows)
        return LogPage(rows, total, last_key, has_more, exact)

    async def describe(self, rows: builtins.list[dict[str, Any]]) -> None:
        """Add ``org_unit_code``, ``org_unit_name`` (from the org-unit cache) and ``submitter`` (the
        username) to each row, in one round trip for the whole page."""
        units = sorted({r["org_unit"] for r in rows if r.get("org_unit")})
        users = sorted({r["submitter_id"] for r in rows if r.get("submitter_id") is not None})
        found: dict[tuple[str, str], dict[str, Any]] = {}
        if units or users:
            for hit in await self.db.fetch(
                    "logs.describe",
                    "SELECT 'ou' AS t, uid::text AS k, code, name FROM organisation_units WHERE uid = ANY(%s::bpchar[])"
                    " UNION ALL SELECT 'u', id::text, NULL, username FROM users WHERE id = ANY(%s::bigint[])",
                    (units, users)):
                found[(hit["t"], hit["k"].strip())] = hit
        for row in rows:
            unit = found.get(("ou", row.get("org_unit") or ""), {})
            row["org_unit_code"] = unit.get("code")
            row["org_unit_name"] = unit.get("name")
            user = found.get(("u", str(row.get("submitter_id"))), {})
            row["submitter"] = user.get("name")

    async def names_of(self, uids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Codes and names the gateway knows for DHIS2 UIDs (the detail view shows "OPD ↔ Re46C6Apebu"):
        data elements and category option combos from the mappings, org units from the org-unit cache.
        ``{uid: {"code", "name", "type"}}``; UIDs nobody knows are left out."""
        if not uids:
            return {}
        out: dict[str, dict[str, Any]] = {}
        for hit in await self.db.fetch(
                "logs.names_of",
                "SELECT 'organisationUnit' AS type, uid::text AS uid, code, name FROM organisation_units"
                " WHERE uid = ANY(%s::bpchar[])"
                " UNION ALL SELECT 'dataElement', dataelement, code, name FROM dhis2_mappings"
                " WHERE what = 'de' AND dataelement = ANY(%s::text[])"
                " UNION ALL SELECT 'categoryOptionCombo', category_option_combo, code, name FROM dhis2_mappings"
                " WHERE what = 'co' AND category_option_combo = ANY(%s::text[])",
                (list(uids), list(uids), list(uids))):
            out.setdefault(hit["uid"].strip(), {"code": hit["code"], "name": hit["name"], "type": hit["type"]})
        return out

    async def _bounded_count(self, where: str, params: builtins.list[Any], cap: int) -> tuple[int, bool]:
        """The exact number of matching rows up to ``count_cap``; above it, the planner's estimate.

        Counting 750,000 rows costs ~100 ms on every page view; past the cap the exact figure
        matters less than answering fast (``total_exact`` says which one the client got).
        """
        row = await self.db.fetch_one(
            "logs.count", f"SELECT count(*) AS n FROM (SELECT 1 FROM submissions WHERE {where} LIMIT %s) s",
            (*params, cap + 1))
        n = int(row["n"]) if row else 0
        if n <= cap:
            return n, True
        plan = await self.db.fetch_one("logs.estimate", f"EXPLAIN (FORMAT JSON) SELECT 1 FROM submissions"
                                       f" WHERE {where}", params)
        estimate = int(_plan_rows(plan))
        return max(estimate, n), False

    async def count(self, f: LogFilter) -> int:
        """How many submissions match ``f``."""
        where, params = where_clause(await self.resolve(f))
        row = await self.db.fetch_one("logs.count", f"SELECT count(*) AS n FROM submissions WHERE {where}", params)
        return int(row["n"]) if row else 0

    async def status_counts(self, windows: dict[str, float]) -> dict[str, dict[str, int]]:
        """Submissions created within each window (name → seconds back from now), per status, in one pass."""
        names = list(windows)
        columns = ", ".join(f"count(*) FILTER (WHERE created_at > now() - make_interval(secs => %s)) AS w{i}"
                            for i in range(len(names)))
        rows = await self.db.fetch(
            "logs.status_counts", f"SELECT status, {columns} FROM submissions"
            " WHERE created_at > now() - make_interval(secs => %s) GROUP BY status",
            (*(windows[n] for n in names), max(windows.values())))
        out: dict[str, dict[str, int]] = {n: {s: 0 for s in PENDING_STATES + FINAL_STATES} for n in names}
        for row in rows:
            for i, name in enumerate(names):
                out[name][row["status"]] = int(row[f"w{i}"])
        return out

    async def ids_after(self, f: LogFilter, after_id: int, limit: int) -> builtins.list[int]:
        """Ids matching ``f`` above ``after_id`` in id order (the requeue job's keyset walk)."""
        where, params = where_clause(await self.resolve(f))
        rows = await self.db.fetch(
            "logs.ids_after", f"SELECT id FROM submissions WHERE ({where}) AND id > %s ORDER BY id LIMIT %s",
            (*params, after_id, limit))
        return [r["id"] for r in rows]

    async def find_ids(self, refs: Sequence[str]) -> dict[str, int]:
        """Resolve submission references (numeric ids or 11-character uids) to ids."""
        ids = [int(r) for r in refs if r.isdigit() and len(r) < 19]
        uids = [r for r in refs if not r.isdigit()]
        rows = await self.db.fetch("logs.find_ids", "SELECT id, uid FROM submissions WHERE id = ANY(%s)"
                                   " OR uid = ANY(%s)", (ids, uids))
        out: dict[str, int] = {}
        for row in rows:
            out[str(row["id"])] = row["id"]
            out[row["uid"].strip()] = row["id"]
        return {r: out[r] for r in refs if r in out}

    # --- delete / purge ------------------------------------------------------------------
    async def delete(self, submission_id: int) -> str | None:
        """Delete one final submission. Returns None when deleted, else the blocking status
        (``"missing"`` when there is no such row)."""

        async def run(cursor: Any) -> str | None:
            rows = await cursor_fetch(cursor, "DELETE FROM submissions WHERE id = %s AND status = ANY(%s)"
                                      " RETURNING id", (submission_id, list(FINAL_STATES)))
            if rows:
                return None
            found = await cursor_fetch(cursor, "SELECT status FROM submissions WHERE id = %s", (submission_id,))
            return found[0]["status"] if found else "missing"

        return await self.db.transaction("logs.delete", run)

    async def purge(self, before: datetime, statuses: Sequence[str], dry_run: bool = False) -> int:
        """Delete (or count) final rows created before ``before`` with one of ``statuses``.

        Non-final statuses are refused here too, not only by the API. Deletes run in chunks so
        a purge of millions of rows never holds one huge transaction.
        """
        final = [s for s in statuses if s in FINAL_STATES]
        if len(final) != len(statuses):
            raise ValueError("only final states can be purged")
        if not final:
            return 0
        if dry_run:
            row = await self.db.fetch_one(
                "logs.purge_count", "SELECT count(*) AS n FROM submissions WHERE created_at < %s"
                " AND status = ANY(%s)", (before, final))
            return int(row["n"]) if row else 0
        deleted = 0
        while True:
            rows = await self.db.fetch(
                "logs.purge",
                "DELETE FROM submissions WHERE id IN (SELECT id FROM submissions WHERE created_at < %s"
                " AND status = ANY(%s) ORDER BY id LIMIT %s) AND status = ANY(%s) RETURNING id",
                (before, final, PURGE_CHUNK, final))
            deleted += len(rows)
            if len(rows) < PURGE_CHUNK:
                return deleted

    # --- queue view ------------------------------------------------------------------------
    async def oldest_waiting(self) -> dict[str, dict[str, Any]]:
        """Per destination: the oldest queued row's creation time and how many rows wait."""
        rows = await self.db.fetch(
            "logs.oldest_waiting",
            "SELECT destination, min(created_at) AS oldest, count(*) AS n FROM submissions"
            f" WHERE status IN {sql_list((QUEUED, RETRYING))} GROUP BY destination")
        return {r["destination"]: {"oldest": r["oldest"], "waiting": int(r["n"])} for r in rows}

    # --- requeue jobs ------------------------------------------------------------------------
    async def create_job(self, job_id: str, actor: str, selection: dict[str, Any], force: bool,
                         matched: int) -> None:
        """Record a new requeue job (``running``)."""
        await self.db.execute(
            "logs.job_create",
            "INSERT INTO requeue_jobs (id, actor, selection, force, matched) VALUES (%s, %s, %s, %s, %s)",
            (job_id, actor, json_param(selection), force, matched))

    async def update_job(self, job_id: str, *, scanned: int, requeued: int, enqueued: int,
                         status: str | None = None, error: str | None = None) -> None:
        """Record a job's progress (and its end when ``status`` is given)."""
        await self.db.execute(
            "logs.job_update",
            "UPDATE requeue_jobs SET scanned = %s, requeued = %s, enqueued = %s, updated_at = now(),"
            " status = coalesce(%s, status), error = coalesce(%s, error),"
            " finished_at = CASE WHEN %s IS NULL THEN finished_at ELSE now() END WHERE id = %s",
            (scanned, requeued, enqueued, status, error, status, job_id))

    async def get_job(self, job_id: str) -> dict[str, Any] | None:
        """One requeue job."""
        return await self.db.fetch_one(
            "logs.job_get", "SELECT id, actor, selection, force, status, matched, scanned, requeued, enqueued,"
            " error, created_at, updated_at, finished_at FROM requeue_jobs WHERE id = %s", (job_id,))

    async def interrupt_running_jobs(self, job_ids: Sequence[str]) -> None:
        """Mark jobs this process was running as interrupted (shutdown)."""
        if job_ids:
            await self.db.execute(
                "logs.job_interrupt", "UPDATE requeue_jobs SET status = 'interrupted', updated_at = now(),"
                " finished_at = now() WHERE id = ANY(%s) AND status = 'running'", (list(job_ids),))


def selection_json(value: Any) -> Any:
    """A stored jsonb value as Python (psycopg2 returns dicts already; strings are parsed)."""
    return json.loads(value) if isinstance(value, str) else value
