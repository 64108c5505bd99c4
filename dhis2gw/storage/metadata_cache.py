"""MetadataCacheStore: the ``metadata_cache`` table (DHIS2 metadata kept per destination).

Rows are ``(destination, kind, key, body)``; a destination's snapshot is replaced as a whole in
one transaction, so a reader never sees half of a refresh.
"""
from __future__ import annotations

from typing import Any

from dhis2gw.storage.database import Database, json_param


class MetadataCacheStore:
    """SQL for metadata_cache."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def replace(self, destination: str, rows: list[tuple[str, str, Any]]) -> None:
        """Replace every row of ``destination`` with ``rows`` of ``(kind, key, body)``."""

        async def work(cursor: Any) -> None:
            await cursor.execute("DELETE FROM metadata_cache WHERE destination = %s", (destination,))
            for kind, key, body in rows:
                await cursor.execute(
                    "INSERT INTO metadata_cache (destination, kind, key, body) VALUES (%s, %s, %s, %s)",
                    (destination, kind, key, json_param(body)))

        await self.db.transaction("metadata_cache.replace", work)

    async def load(self, destination: str) -> list[dict[str, Any]]:
        """Every row of one destination."""
        return await self.db.fetch("metadata_cache.load",
                                   "SELECT kind, key, body, fetched_at FROM metadata_cache WHERE destination = %s",
                                   (destination,))
