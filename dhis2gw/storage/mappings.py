"""MappingStore: the ``dhis2_mappings`` table (the original's 13 columns).

Lookups on the ingest hot path; import/export and CRUD build on the same table.
``what`` is ``de`` for data-value mappings (code → dataelement + category_option_combo),
``ou`` for org-unit mappings (source_orgunit → destination_orgunit) and ``co`` for category
options. A mapping row with an empty ``source_name``/``instance_name`` applies to every
submitter/destination; a specific row wins over a generic one.
"""
from __future__ import annotations

from typing import Any, Iterable, Optional

from dhis2gw.storage.database import Database

_SCHEME_COLUMN = {"CODE": "code", "NAME": "name", "UID": "dataelement"}


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
            " AND source_name IN (%s, '') AND instance_name IN (%s, '')",
            (lookup, source_name, instance_name))
        best: dict[str, tuple[int, dict[str, Any]]] = {}
        for row in rows:
            rank = (row["source_name"] != "") * 2 + (row["instance_name"] != "")
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
                               instance_name: str) -> Optional[str]:
        """The destination org unit mapped from a submitter's org unit code, if any."""
        rows = await self.db.fetch(
            "mappings.org_unit",
            "SELECT destination_orgunit, source_name, instance_name FROM dhis2_mappings"
            " WHERE what = 'ou' AND (source_orgunit = %s OR code = %s)"
            " AND source_name IN (%s, '') AND instance_name IN (%s, '')",
            (source_orgunit, source_orgunit, source_name, instance_name))
        if not rows:
            return None
        rows.sort(key=lambda r: (r["source_name"] != "") * 2 + (r["instance_name"] != ""), reverse=True)
        return rows[0]["destination_orgunit"] or None
