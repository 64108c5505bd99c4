"""Look-ups for submitter scoping (issue 16, F9): where org units sit in the synced hierarchy."""
from __future__ import annotations

from collections.abc import Sequence

from dhis2gw.storage.database import Database


class ScopeStore:
    """Reads ``organisation_units`` (kept by the org-unit sync) for scope checks."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def paths(self, identifiers: Sequence[str]) -> dict[str, list[str]]:
        """identifier → the ``path`` of every org unit whose UID, code or name it is."""
        if not identifiers:
            return {}
        rows = await self.db.fetch(
            "scope.paths",
            "SELECT trim(uid) AS uid, code, name, path FROM organisation_units"
            " WHERE uid = ANY(%s) OR code = ANY(%s) OR name = ANY(%s)",
            (list(identifiers), list(identifiers), list(identifiers)))
        found: dict[str, list[str]] = {}
        wanted = set(identifiers)
        for row in rows:
            for key in {row["uid"], row["code"], row["name"]} & wanted:
                found.setdefault(key, []).append(row["path"])
        return found
