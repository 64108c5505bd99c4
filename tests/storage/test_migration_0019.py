"""Migration 0019 gives dhis2_mappings the original's ``dimension_type`` ('none' for existing rows)."""
from __future__ import annotations

from tests.storage.migration_case import MigrationCase


class DimensionTypeTests(MigrationCase):
    """A mapping written before the migration reads dimension_type 'none' after it."""

    async def test_existing_rows_get_none(self) -> None:
        """Existing and new rows default to 'none'; a value is kept."""
        await self.migrate_below(19)
        self.sql("INSERT INTO dhis2_mappings (uid, code, dataelement) VALUES ('mOldMapping', 'OLD', 'x')")
        await self.migrate_all()
        self.sql("INSERT INTO dhis2_mappings (uid, code, dataelement, dimension_type)"
                 " VALUES ('mNewMapping', 'NEW', 'x', 'attribution'), ('mDefaulted1', 'DEF', 'x', DEFAULT)")
        self.assertEqual(self.sql("SELECT code, dimension_type FROM dhis2_mappings ORDER BY code"),
                         [("DEF", "none"), ("NEW", "attribution"), ("OLD", "none")])
