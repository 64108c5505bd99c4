"""PropagationStore: per CC server, what the gateway last planned and delivered for each org unit.

One ``orgunit_propagation`` row per (server, unit, operation) where operation is ``unit`` (the
unit itself: create or update) or ``group`` (its group memberships). ``content_hash`` is the hash
of the body last planned or delivered, ``status`` is ``queued`` (planned), ``delivered`` or
``rejected``. A unit is in step on a server when its row is delivered (or rejected: the same body
would be refused again) with the current hash.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from dhis2gw.storage.database import Database, json_param
from dhis2gw.storage.statuses import PENDING_STATES

_MARK = """
INSERT INTO orgunit_propagation AS t (server, unit_uid, operation, content_hash, submission_id, status)
SELECT %(server)s, u, op, h, %(sid)s, s FROM jsonb_to_recordset(%(rows)s::jsonb) AS x(u text, op text, h text, s text)
ON CONFLICT (server, unit_uid, operation) DO UPDATE SET content_hash = EXCLUDED.content_hash,
    submission_id = coalesce(EXCLUDED.submission_id, t.submission_id), status = EXCLUDED.status, updated_at = now()
"""


class PropagationStore:
    """SQL for ``orgunit_propagation`` and the pending-batch check."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def rows(self, servers: Sequence[str]) -> dict[tuple[str, str, str], dict[str, Any]]:
        """(server, unit, operation) -> {content_hash, status} for ``servers``."""
        if not servers:
            return {}
        rows = await self.db.fetch(
            "propagation.rows",
            "SELECT server, unit_uid, operation, content_hash, status FROM orgunit_propagation"
            " WHERE server = ANY(%s)", (list(servers),))
        return {(r["server"], r["unit_uid"].strip(), r["operation"]): r for r in rows}

    async def states(self, server: str, uids: Iterable[str]) -> dict[tuple[str, str], dict[str, Any]]:
        """(unit, operation) -> row for one server and some units (the kind's skip check)."""
        rows = await self.db.fetch(
            "propagation.states",
            "SELECT unit_uid, operation, content_hash, status FROM orgunit_propagation"
            " WHERE server = %s AND unit_uid = ANY(%s::char(11)[])", (server, list(set(uids))))
        return {(r["unit_uid"].strip(), r["operation"]): r for r in rows}

    async def mark(self, server: str, items: Sequence[tuple[str, str, str, str]],
                   submission_id: int | None = None) -> None:
        """Upsert rows: each item is (unit uid, operation, content hash, status)."""
        if not items:
            return
        rows = [{"u": u, "op": op, "h": h, "s": s} for u, op, h, s in items]
        await self.db.execute("propagation.mark", _MARK,
                              {"server": server, "sid": submission_id, "rows": json_param(rows)})

    async def pending_servers(self, servers: Sequence[str]) -> set[str]:
        """Servers that still have an orgunit submission not in a final state."""
        if not servers:
            return set()
        rows = await self.db.fetch(
            "propagation.pending",
            "SELECT DISTINCT destination FROM submissions WHERE kind = 'orgunit' AND destination = ANY(%s)"
            " AND status = ANY(%s)", (list(servers), list(PENDING_STATES)))
        return {r["destination"] for r in rows}

    async def summary(self) -> list[dict[str, Any]]:
        """Counts of rows by server, operation and status (for the API)."""
        return await self.db.fetch(
            "propagation.summary",
            "SELECT server, operation, status, count(*) AS n FROM orgunit_propagation"
            " GROUP BY server, operation, status ORDER BY server, operation, status")
