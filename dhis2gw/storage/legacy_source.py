"""Reading the database of the original Go dhis2gw (for ``dhis2gw import-legacy``).

The original migrated its schema with golang-migrate, 000001 to 000007; an installation may be
at any of them. This reader therefore asks ``information_schema`` which tables and columns
exist and selects only those; a column that is missing comes back as ``None`` (the caller
applies the original's default for the migration that would have added it).

Synchronous psycopg2, read-only (``SET TRANSACTION READ ONLY``): it runs in the CLI command,
outside the reactor, like ``dhis2gw migrate``.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import psycopg2
import psycopg2.extras
from psycopg2 import sql

USER_COLUMNS = ("id", "uid", "username", "password", "firstname", "lastname", "telephone", "email", "is_active",
                "is_admin_user", "created", "updated", "last_login")
MAPPING_COLUMNS = ("id", "uid", "code", "what", "name", "description", "dataset", "dataelement",
                   "category_option_combo", "category_option", "category_combo", "instance_name", "source_name",
                   "source_orgunit", "dest_orgunit", "dimension_type", "created", "updated")
SERVER_COLUMNS = ("id", "uid", "name", "username", "password", "auth_token", "url", "auth_method", "system_type",
                  "endpoint_type", "suspended", "created")
LOG_COLUMNS = ("id", "submitted_at", "payload", "status", "retry_count", "last_attempt_at", "task_id", "response",
               "errors", "dhis2_payload")
_LOCAL_TIMES = frozenset({"submitted_at", "last_attempt_at"})  # TIMESTAMP without time zone in the original


class LegacySource:
    """A read-only view of the original's tables.

    :param dsn: the original database's URI.
    :param timezone: the zone its TIMESTAMP-without-time-zone columns were written in (the Go
        service wrote ``NOW()`` in its session's zone, normally the server's ``timezone``).
    """

    def __init__(self, dsn: str, timezone: str) -> None:
        self.conn = psycopg2.connect(dsn)
        self.conn.set_session(readonly=True)
        self.timezone = timezone
        with self.conn.cursor() as cur:
            cur.execute("SELECT table_name, column_name FROM information_schema.columns"
                        " WHERE table_schema = current_schema()")
            self.columns: dict[str, set[str]] = {}
            for table, column in cur.fetchall():
                self.columns.setdefault(table, set()).add(column)

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    def has(self, table: str, column: str | None = None) -> bool:
        """True when ``table`` (and ``column`` in it) exists."""
        return table in self.columns and (column is None or column in self.columns[table])

    def _select(self, table: str, wanted: Sequence[str], order: str = "id") -> Iterator[dict[str, Any]]:
        present = self.columns.get(table, set())
        if not present:
            return iter(())
        fields: list[sql.Composable] = []
        for column in wanted:
            if column not in present:
                fields.append(sql.SQL("NULL AS {}").format(sql.Identifier(column)))
            elif column in _LOCAL_TIMES:
                fields.append(sql.SQL("({} AT TIME ZONE {}) AS {}").format(
                    sql.Identifier(column), sql.Literal(self.timezone), sql.Identifier(column)))
            else:
                fields.append(sql.Identifier(column))
        query = sql.SQL("SELECT {} FROM {} ORDER BY {}").format(
            sql.SQL(", ").join(fields), sql.Identifier(table), sql.Identifier(order))
        cur = self.conn.cursor(name=f"legacy_{table}", cursor_factory=psycopg2.extras.RealDictCursor)
        cur.itersize = 2000
        cur.execute(query)

        def rows() -> Iterator[dict[str, Any]]:
            try:
                for row in cur:
                    yield dict(row)
            finally:
                cur.close()

        return rows()

    def users(self) -> list[dict[str, Any]]:
        """Every ``users`` row (with its bcrypt ``password``)."""
        return list(self._select("users", USER_COLUMNS))

    def api_tokens(self) -> list[dict[str, Any]]:
        """The active ``user_apitoken`` rows (plain-text tokens, as the original kept them) with usernames."""
        if not (self.has("user_apitoken") and self.has("users")):
            return []
        with self.conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.execute("SELECT t.id, u.username, t.token, t.expires_at, t.created FROM user_apitoken t"
                        " JOIN users u ON u.id = t.user_id WHERE t.is_active ORDER BY t.id")
            return [dict(r) for r in cur.fetchall()]

    def mappings(self) -> list[dict[str, Any]]:
        """Every ``dhis2_mappings`` row."""
        return list(self._select("dhis2_mappings", MAPPING_COLUMNS))

    def dimension_rows(self) -> int:
        """How many ``dhis2_mapping_dimension`` rows there are (the original never used them)."""
        if not self.has("dhis2_mapping_dimension"):
            return 0
        with self.conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM dhis2_mapping_dimension")
            row = cur.fetchone()  # count(*) always answers one row
            return int(row[0]) if row else 0

    def servers(self) -> list[dict[str, Any]]:
        """Every ``servers`` row (passwords and tokens in plain text, as the original kept them)."""
        return list(self._select("servers", SERVER_COLUMNS))

    def submission_log(self) -> Iterator[dict[str, Any]]:
        """Every ``submission_log`` row, oldest id first, times as aware datetimes (streamed)."""
        return self._select("submission_log", LOG_COLUMNS)

    def finish(self) -> None:
        """End the read transaction."""
        self.conn.rollback()
