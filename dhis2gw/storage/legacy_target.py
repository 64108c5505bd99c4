"""Writing the original Go dhis2gw's rows into this gateway's tables (``dhis2gw import-legacy``).

``LegacyTarget`` is synchronous psycopg2 on one transaction, committed by the caller (or rolled
back for ``--dry-run``); it runs in the CLI command, outside the reactor, like ``migrate``.
Every write is idempotent:

* users are matched by username (case-insensitive): an existing one is left as it is; their
  active API tokens are stored by hash (``api_tokens.token_hash`` is unique);
* mappings are upserted on (code, source_name, instance_name, what) and only changed rows are
  written (``IS DISTINCT FROM``);
* a ``submission_log`` row becomes the submission whose ``idempotency_key`` is
  ``legacy-<its id>`` (no submitter); an existing one is left as it is.

``ImportedSubmissions`` is the asynchronous part (``--requeue``): preparing an imported row's
DHIS2 payload again with this gateway's mappings before it is requeued.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import orjson
import psycopg2
import psycopg2.extras

from dhis2gw.dhis2.uids import generate_uid
from dhis2gw.storage.database import Database, json_param

MAPPING_COLUMNS = ("code", "what", "name", "description", "dataset", "dataelement", "category_option_combo",
                   "category_option", "category_combo", "instance_name", "source_name", "source_orgunit",
                   "destination_orgunit", "dimension_type")
_MAPPING_VALUES = tuple(c for c in MAPPING_COLUMNS if c not in ("code", "what", "instance_name", "source_name"))
_MAPPING_UPSERT = (
    "INSERT INTO dhis2_mappings (uid, " + ", ".join(MAPPING_COLUMNS) + ") VALUES %s"
    " ON CONFLICT (code, source_name, instance_name, what) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in _MAPPING_VALUES) + ", updated_at = now()"
    " WHERE (" + ", ".join(f"dhis2_mappings.{c}" for c in _MAPPING_VALUES) + ") IS DISTINCT FROM ("
    + ", ".join(f"EXCLUDED.{c}" for c in _MAPPING_VALUES) + ") RETURNING (xmax = 0) AS inserted")
# Imported rows: aggregate submissions to `main`, no submitter (the original recorded none).
_SUBMISSION_TYPES = {
    "uid": "text", "idempotency_key": "text", "payload": "jsonb", "dhis2_payload": "jsonb", "status": "text",
    "attempts": "integer", "created_at": "timestamptz", "updated_at": "timestamptz", "last_attempt_at": "timestamptz",
    "finished_at": "timestamptz", "response": "jsonb", "import_count": "jsonb", "conflicts": "jsonb", "error": "text",
    "value_count": "integer"}
_SUBMISSION_COLUMNS = tuple(_SUBMISSION_TYPES)
_SUBMISSION_INSERT = (
    "WITH r AS (SELECT * FROM json_to_recordset(%s::json) AS r("
    + ", ".join(f"{c} {t}" for c, t in _SUBMISSION_TYPES.items()) + ", detail text)),"
    " s AS (INSERT INTO submissions (kind, destination, endpoint, " + ", ".join(_SUBMISSION_COLUMNS) + ")"
    " SELECT 'aggregate', 'main', '/api/v2/aggregate', " + ", ".join(f"r.{c}" for c in _SUBMISSION_COLUMNS)
    + " FROM r RETURNING id, idempotency_key, status),"
    " e AS (INSERT INTO submission_events (submission_id, event, status, destination, detail, actor)"
    " SELECT s.id, 'imported', s.status, 'main', r.detail, %s FROM s JOIN r USING (idempotency_key))"
    " SELECT id, idempotency_key FROM s")


class LegacyTarget:
    """This gateway's database, one transaction (see module docstring)."""

    def __init__(self, dsn: str) -> None:
        self.conn = psycopg2.connect(dsn)
        self.cur = self.conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor)

    def commit(self) -> None:
        """Keep what was written."""
        self.conn.commit()

    def rollback(self) -> None:
        """Forget what was written (``--dry-run``)."""
        self.conn.rollback()

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    # --- users ------------------------------------------------------------------------------
    def existing_usernames(self) -> set[str]:
        """Lower-cased usernames already present."""
        self.cur.execute("SELECT lower(username) AS u FROM users")
        return {r["u"] for r in self.cur.fetchall()}

    def insert_user(self, row: dict[str, Any]) -> str:
        """Insert one user (its uid kept when free); return the uid it got."""
        uid = row["uid"]
        if uid:
            self.cur.execute("SELECT 1 FROM users WHERE uid = %s", (uid,))
            if self.cur.fetchone():
                uid = None
        uid = uid or generate_uid()
        self.cur.execute(
            "INSERT INTO users (uid, username, email, full_name, telephone, role, password_hash, is_active,"
            " created_at, updated_at, last_login_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s,"
            " coalesce(%s, now()), now(), %s)",
            (uid, row["username"], row["email"], row["full_name"], row["telephone"], row["role"],
             row["password_hash"], row["is_active"], row["created_at"], row["last_login_at"]))
        return uid

    def insert_api_token(self, username: str, token_hash: str, prefix: str, expires_at: Any,
                         created_at: Any) -> bool | None:
        """Give ``username`` an API token by its hash: True when added, False when present, None without the user."""
        self.cur.execute("SELECT id FROM users WHERE lower(username) = lower(%s)", (username,))
        user = self.cur.fetchone()
        if user is None:
            return None
        self.cur.execute(
            "INSERT INTO api_tokens (user_id, token_hash, prefix, description, expires_at, created_at)"
            " VALUES (%s, %s, %s, 'imported from the Go dhis2gw', %s, coalesce(%s, now()))"
            " ON CONFLICT (token_hash) DO NOTHING RETURNING id",
            (user["id"], token_hash, prefix, expires_at, created_at))
        return self.cur.fetchone() is not None

    # --- mappings -----------------------------------------------------------------------------
    def mapping_uids(self) -> dict[tuple[str, str, str, str], str]:
        """uid of every mapping by key."""
        self.cur.execute("SELECT uid, code, source_name, instance_name, what FROM dhis2_mappings")
        return {(r["code"], r["source_name"], r["instance_name"], r["what"]): r["uid"] for r in self.cur.fetchall()}

    def upsert_mappings(self, rows: Sequence[dict[str, Any]]) -> tuple[int, int]:
        """Insert new / update changed mappings; return ``(inserted, updated)``. Keys unique within rows."""
        if not rows:
            return 0, 0
        result = psycopg2.extras.execute_values(
            self.cur, _MAPPING_UPSERT, [[r["uid"]] + [r[c] for c in MAPPING_COLUMNS] for r in rows],
            page_size=1000, fetch=True)
        inserted = sum(1 for r in result if r["inserted"])
        return inserted, len(result) - inserted

    # --- submissions -----------------------------------------------------------------------------
    def imported_keys(self, prefix: str) -> dict[str, dict[str, Any]]:
        """``idempotency_key → {id, status, requeued}`` of the submissions imported earlier."""
        self.cur.execute(
            "SELECT s.idempotency_key AS key, s.id, s.status, EXISTS (SELECT 1 FROM submission_events e"
            " WHERE e.submission_id = s.id AND e.event = 'requeued') AS requeued"
            " FROM submissions s WHERE s.submitter_id IS NULL AND s.idempotency_key LIKE %s",
            (prefix.replace("%", "\\%").replace("_", "\\_") + "%",))
        return {r["key"]: dict(r) for r in self.cur.fetchall()}

    def insert_submissions(self, rows: Sequence[dict[str, Any]], actor: str) -> dict[str, int]:
        """Insert submissions with an ``imported`` event each; return ``idempotency_key → id``.

        One statement per chunk: the rows travel as one JSON document (``json_to_recordset``),
        the submissions and their events are inserted by data-modifying CTEs.
        """
        if not rows:
            return {}
        document = orjson.dumps([{**{c: row[c] for c in _SUBMISSION_COLUMNS if c in row}, "uid": generate_uid(),
                                  "detail": row["detail"][:1000]} for row in rows])
        self.cur.execute(_SUBMISSION_INSERT, (document.decode(), actor))
        return {r["idempotency_key"]: r["id"] for r in self.cur.fetchall()}


class ImportedSubmissions:
    """Async writes on imported submissions (the ``--requeue`` path, in the reactor)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def payloads(self, ids: Iterable[int]) -> list[dict[str, Any]]:
        """id, payload and destination of each submission."""
        return await self.db.fetch("legacy.payloads", "SELECT id, payload, destination FROM submissions"
                                   " WHERE id = ANY(%s) ORDER BY id", (list(ids),))

    async def set_prepared(self, submission_id: int, dhis2_payload: Any, import_params: dict[str, str],
                           value_count: int) -> None:
        """Store the DHIS2 payload this gateway prepared for an imported (still final) submission."""
        await self.db.execute(
            "legacy.set_prepared", "UPDATE submissions SET dhis2_payload = %s, import_params = %s, value_count = %s,"
            " updated_at = now() WHERE id = %s AND status = 'failed'",
            (json_param(dhis2_payload), json_param(import_params), value_count, submission_id))
