"""UidMapStore: the ``uid_map`` table — (source system, source id, object type) → DHIS2 UID.

The tracker kind assigns UIDs at acceptance. When a submitter identifies an object with its own
id (a ``reference`` field, or a configured source-id attribute), the UID is remembered here so
the same patient submitted again — or a flat event submitted later that references the
enrollment by the submitter's id — gets the same UID. First writer wins: ``remember`` never
overwrites, and returns what is stored, so two concurrent ingests agree on one UID.
"""
from __future__ import annotations

from collections.abc import Iterable

from dhis2gw.storage.database import Database

Key = tuple[str, str]  # (object type, source id)


class UidMapStore:
    """SQL for uid_map."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def source_system(self, submitter_id: int | None, source_name: str | None) -> str:
        """The namespace of a submitter's ids: its ``source_name``, else its username.

        Falls back to ``user:<id>`` (or ``anonymous``) when the user row is not found.
        """
        if source_name:
            return source_name
        if submitter_id is None:
            return "anonymous"
        row = await self.db.fetch_one("uid_map.username", "SELECT username FROM users WHERE id = %s",
                                      (submitter_id,))
        return row["username"] if row else f"user:{submitter_id}"

    async def lookup(self, source_system: str, keys: Iterable[Key]) -> dict[Key, str]:
        """The stored UIDs of ``keys`` (those not stored are absent)."""
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return {}
        rows = await self.db.fetch(
            "uid_map.lookup",
            "SELECT m.object_type, m.source_id, m.uid FROM uid_map m"
            " JOIN unnest(%s::text[], %s::text[]) AS k(object_type, source_id)"
            " ON m.object_type = k.object_type AND m.source_id = k.source_id"
            " WHERE m.source_system = %s",
            ([t for t, _ in wanted], [s for _, s in wanted], source_system))
        return {(r["object_type"], r["source_id"]): r["uid"].strip() for r in rows}

    async def remember(self, source_system: str, pairs: dict[Key, str]) -> dict[Key, str]:
        """Store new (type, source id) → UID pairs unless already mapped; return what is stored."""
        if not pairs:
            return {}
        keys = list(pairs)
        await self.db.execute(
            "uid_map.remember",
            "INSERT INTO uid_map (source_system, source_id, object_type, uid)"
            " SELECT %s, k.source_id, k.object_type, k.uid"
            " FROM unnest(%s::text[], %s::text[], %s::text[]) AS k(object_type, source_id, uid)"
            " ON CONFLICT (source_system, source_id, object_type) DO NOTHING",
            (source_system, [t for t, _ in keys], [s for _, s in keys], [pairs[k] for k in keys]))
        return await self.lookup(source_system, keys)
