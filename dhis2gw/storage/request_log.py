"""The ``request_log`` table: batched inserts and the filtered, paginated query."""
from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from dhis2gw.storage.database import Database

# The order of the values in each row tuple given to ``insert_many``.
ROW_FIELDS = ("at", "request_id", "method", "endpoint", "path", "user_id", "username", "status", "duration_ms",
              "remote_addr", "body_size", "error_code", "body_excerpt")
_ROW_SQL = "(to_timestamp(%s), " + ", ".join(["%s"] * (len(ROW_FIELDS) - 1)) + ")"
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_SELECT = ("id, at, request_id, method, endpoint, path, user_id, username, status, duration_ms, remote_addr,"
           " body_size, error_code, body_excerpt")


class RequestLogStore:
    """Writes and reads ``request_log``."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def purge_before(self, cutoff: float, batch: int = 5000) -> int:
        """Delete up to ``batch`` rows logged before the POSIX time ``cutoff``; return how many."""
        rows = await self.db.fetch(
            "request_log.purge_before",
            "DELETE FROM request_log WHERE id IN (SELECT id FROM request_log WHERE at < to_timestamp(%s)"
            " ORDER BY at LIMIT %s) RETURNING id", (cutoff, batch))
        return len(rows)

    async def insert_many(self, rows: list[tuple[Any, ...]]) -> None:
        """Insert ``rows`` (tuples in ROW_FIELDS order, ``at`` a POSIX time) in one statement."""
        if not rows:
            return
        params: list[Any] = []
        for row in rows:
            # PostgreSQL text cannot hold NUL (nor UTF-8 a lone surrogate); a fuzzed or hostile request
            # must not cost the batch.
            params.extend(_UNSTORABLE.sub("\ufffd", v) if isinstance(v, str) else v for v in row)
        sql = f"INSERT INTO request_log ({', '.join(ROW_FIELDS)}) VALUES " + ", ".join([_ROW_SQL] * len(rows))
        await self.db.execute("request_log.insert_many", sql, params)

    async def query(self, *, since: datetime | None = None, until: datetime | None = None,
                    username: str | None = None, user_id: int | None = None, endpoint: str | None = None,
                    status: int | None = None, status_class: int | None = None, method: str | None = None,
                    page: int = 1, page_size: int = 50) -> tuple[list[dict[str, Any]], int]:
        """One page of rows (newest first) matching every given filter, and the total count."""
        where: list[str] = ["TRUE"]
        params: list[Any] = []
        for clause, value in (("at >= %s", since), ("at < %s", until), ("lower(username) = lower(%s)", username),
                              ("user_id = %s", user_id), ("endpoint = %s", endpoint), ("status = %s", status),
                              ("method = %s", method)):
            if value is not None:
                where.append(clause)
                params.append(value)
        if status_class is not None:
            where.append("status >= %s AND status < %s")
            params += [status_class * 100, status_class * 100 + 100]
        clause = " AND ".join(where)
        total = await self.db.fetch_one("request_log.count", f"SELECT count(*) AS n FROM request_log WHERE {clause}",
                                        params)
        rows = await self.db.fetch(
            "request_log.query",
            f"SELECT {_SELECT} FROM request_log WHERE {clause} ORDER BY at DESC, id DESC LIMIT %s OFFSET %s",
            params + [page_size, (page - 1) * page_size])
        return rows, int(total["n"]) if total else 0
