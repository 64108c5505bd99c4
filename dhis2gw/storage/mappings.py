"""MappingStore: the ``dhis2_mappings`` table (the original's 13 columns).

Lookups on the ingest hot path; import/export and CRUD build on the same table.
``what`` is ``de`` for data-value mappings (code → dataelement + category_option_combo),
``ou`` for org-unit mappings (source_orgunit → destination_orgunit) and ``co`` for category
options. A mapping row whose ``source_name``/``instance_name`` is empty or ``default`` applies to
every submitter/destination (``default`` is how the original dhis2gw wrote "any": its sheets carry
``default``/``default`` on every row); a specific row wins over a generic one.
"""
from __future__ import annotations

import builtins
from collections.abc import Iterable
from typing import Any

from dhis2gw.storage.database import Database

_SCHEME_COLUMN = {"CODE": "code", "NAME": "name", "UID": "dataelement"}
# source_name / instance_name values meaning "every submitter / every destination".
ANY_SCOPE: tuple[str, ...] = ("", "default")
_IN_SCOPE = "source_name IN (%s, '', 'default') AND instance_name IN (%s, '', 'default')"


def scope_rank(row: dict[str, Any]) -> int:
    """How specific a row is: a named source (2) beats a named instance (1) beats "any" (0)."""
    return (row["source_name"] not in ANY_SCOPE) * 2 + (row["instance_name"] not in ANY_SCOPE)


class MappingStore:
    """SQL for dhis2_mappings."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def data_value_mappings(self, keys: Iterable[str], scheme: str, source_name: str,
                                  instance_name: str) -> dict[str, dict[str, Any]]:
        """Map each submitter key to its best mapping row (``what='de'``) under ``scheme``.

        ``UID`` keys are ``dataElement`` or ``dataElement.categoryOptionCombo``.
        """
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return {}
        column = _SCHEME_COLUMN.get(scheme.upper(), "code")
        lookup = [k.split(".", 1)[0] for k in wanted] if column == "dataelement" else wanted
        rows = await self.db.fetch(
            "mappings.data_values",
            f"SELECT code, name, dataset, dataelement, category_option_combo, source_name, instance_name"
            f" FROM dhis2_mappings WHERE what = 'de' AND {column} = ANY(%s)"
            " AND " + _IN_SCOPE, (lookup, source_name, instance_name))
        best: dict[str, tuple[int, dict[str, Any]]] = {}
        for row in rows:
            rank = scope_rank(row)
            keyed = row[column] if column != "dataelement" else row["dataelement"]
            candidates = [k for k in wanted if (k.split(".", 1)[0] if column == "dataelement" else k) == keyed]
            for key in candidates:
                if column == "dataelement" and "." in key:
                    coc = key.split(".", 1)[1]
                    if row["category_option_combo"] not in ("", coc):
                        continue
                if key not in best or rank > best[key][0]:
                    best[key] = (rank, row)
        return {key: row for key, (_, row) in best.items()}

    async def org_unit_mapping(self, source_orgunit: str, source_name: str,
                               instance_name: str) -> str | None:
        """The destination org unit mapped from a submitter's org unit code, if any."""
        rows = await self.db.fetch(
            "mappings.org_unit",
            "SELECT destination_orgunit, source_name, instance_name FROM dhis2_mappings"
            " WHERE what = 'ou' AND (source_orgunit = %s OR code = %s)"
            " AND " + _IN_SCOPE, (source_orgunit, source_orgunit, source_name, instance_name))
        if not rows:
            return None
        rows.sort(key=scope_rank, reverse=True)
        return rows[0]["destination_orgunit"] or None


# --- management (import/export, CRUD) -----------------------------------------------------
# Columns of the original sheet, in its order (dhis2gw.mapping.rows.COLUMNS; repeated here so
# the SQL layer does not import the feature package).
SHEET_COLUMNS = ("code", "what", "name", "description", "dataset", "dataelement", "category_option_combo",
                 "category_option", "category_combo", "instance_name", "source_name", "source_orgunit",
                 "destination_orgunit")
_VALUE_COLUMNS = tuple(c for c in SHEET_COLUMNS if c not in ("code", "what", "instance_name", "source_name"))
_SELECT = ("SELECT uid, " + ", ".join(SHEET_COLUMNS) + ", created_at, updated_at FROM dhis2_mappings")
_UPSERT = (
    "INSERT INTO dhis2_mappings (uid, " + ", ".join(SHEET_COLUMNS) + ") SELECT uid, " + ", ".join(SHEET_COLUMNS)
    + " FROM json_to_recordset(%s::json) AS r(uid text, " + ", ".join(f"{c} text" for c in SHEET_COLUMNS) + ")"
    " ON CONFLICT (code, source_name, instance_name, what) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in _VALUE_COLUMNS) + ", updated_at = now()"
    " WHERE (" + ", ".join(f"dhis2_mappings.{c}" for c in _VALUE_COLUMNS) + ") IS DISTINCT FROM ("
    + ", ".join(f"EXCLUDED.{c}" for c in _VALUE_COLUMNS) + ")"
    " RETURNING (xmax = 0) AS inserted")
FILTER_COLUMNS = ("code", "dataset", "dataelement", "source_name", "instance_name", "what")


class DuplicateMapping(Exception):
    """Another mapping has the same (code, source_name, instance_name, what)."""


def _where(filters: dict[str, str], q: str | None) -> tuple[str, list[Any]]:
    clauses, params = [], []
    for column in FILTER_COLUMNS:
        if filters.get(column) is not None:
            clauses.append(f"{column} = %s")
            params.append(filters[column])
    if q:
        like = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        clauses.append("(code ILIKE %s OR name ILIKE %s OR description ILIKE %s OR dataelement ILIKE %s"
                       " OR source_orgunit ILIKE %s)")
        params.extend([like] * 5)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


class MappingAdminStore:
    """SQL for managing dhis2_mappings: list/CRUD, bulk upsert, export, cache loading."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def list(self, filters: dict[str, str], q: str | None, limit: int, offset: int
                   ) -> tuple[list[dict[str, Any]], int]:
        """One page of mappings (ordered by code, source, instance, what) and the total."""
        where, params = _where(filters, q)
        total = await self.db.fetch_one("mappings.count", "SELECT count(*) AS n FROM dhis2_mappings" + where, params)
        rows = await self.db.fetch(
            "mappings.list", _SELECT + where + " ORDER BY code, source_name, instance_name, what LIMIT %s OFFSET %s",
            params + [limit, offset])
        return rows, int(total["n"]) if total else 0

    async def export_rows(self, filters: dict[str, str], q: str | None) -> builtins.list[dict[str, Any]]:
        """Every mapping matching the filters, in export order."""
        where, params = _where(filters, q)
        return await self.db.fetch("mappings.export", _SELECT + where
                                   + " ORDER BY what, source_name, instance_name, code", params)

    async def get(self, uid: str) -> dict[str, Any] | None:
        """One mapping by uid."""
        return await self.db.fetch_one("mappings.get", _SELECT + " WHERE uid = %s", (uid,))

    async def create(self, uid: str, row: dict[str, str]) -> dict[str, Any]:
        """Insert one mapping; raise DuplicateMapping when its key exists."""
        import psycopg2

        try:
            created = await self.db.fetch_one(
                "mappings.create", "INSERT INTO dhis2_mappings (uid, " + ", ".join(SHEET_COLUMNS) + ") VALUES ("
                + ", ".join(["%s"] * (len(SHEET_COLUMNS) + 1)) + ") RETURNING uid",
                [uid] + [row[c] for c in SHEET_COLUMNS])
        except psycopg2.IntegrityError:
            raise DuplicateMapping() from None
        assert created is not None
        row_out = await self.get(created["uid"])
        assert row_out is not None
        return row_out

    async def update(self, uid: str, row: dict[str, str]) -> dict[str, Any] | None:
        """Replace one mapping's columns; None when it does not exist."""
        import psycopg2

        try:
            updated = await self.db.fetch_one(
                "mappings.update", "UPDATE dhis2_mappings SET " + ", ".join(f"{c} = %s" for c in SHEET_COLUMNS)
                + ", updated_at = now() WHERE uid = %s RETURNING uid", [row[c] for c in SHEET_COLUMNS] + [uid])
        except psycopg2.IntegrityError:
            raise DuplicateMapping() from None
        return await self.get(uid) if updated else None

    async def delete(self, uid: str) -> bool:
        """Delete one mapping; False when it did not exist."""
        row = await self.db.fetch_one("mappings.delete", "DELETE FROM dhis2_mappings WHERE uid = %s RETURNING id",
                                      (uid,))
        return row is not None

    @staticmethod
    async def upsert_chunk(cursor: Any, uids: builtins.list[str],
                           rows: builtins.list[dict[str, str]]) -> tuple[int, int]:
        """Insert new / update changed rows inside a transaction; return ``(inserted, updated)``.

        Unchanged rows are not touched (``IS DISTINCT FROM``), so the caller counts them as
        ``len(rows) - inserted - updated``. Keys must be unique within ``rows``.
        """
        if not rows:
            return 0, 0
        import json

        # One JSON document per chunk: far fewer Python objects than 14 adapted arrays.
        for uid, row in zip(uids, rows):
            row["uid"] = uid
        await cursor.execute(_UPSERT, (json.dumps(rows),))
        result = cursor.fetchall()
        inserted = sum(1 for r in result if r["inserted"])
        return inserted, len(result) - inserted

    async def scope_rows(self, source_name: str, instance_name: str) -> builtins.list[dict[str, Any]]:
        """Every de/ou mapping that applies to one submitter source and destination (cache fill)."""
        return await self.db.fetch(
            "mappings.scope",
            "SELECT code, name, what, dataset, dataelement, category_option_combo, source_name, instance_name,"
            " source_orgunit, destination_orgunit FROM dhis2_mappings WHERE what IN ('de', 'ou')"
            " AND " + _IN_SCOPE + " ORDER BY id", (source_name, instance_name))
