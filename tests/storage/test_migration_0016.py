"""Migration 0016 gives existing users no extra permission: no callbacks, no scope limit, no delete."""
from __future__ import annotations

from tests.storage.migration_case import MigrationCase


class SecurityColumnsTests(MigrationCase):
    """A user created before 0016 keeps working and gains the safe defaults."""

    async def test_existing_users_get_safe_defaults(self) -> None:
        """callback_allowed false, empty scopes (no limit, as before), may_delete false."""
        await self.migrate_below(16)
        self.sql("INSERT INTO users (uid, username, role, password_hash)"
                 " VALUES ('OldUser0001', 'old', 'submitter', 'x')")
        await self.migrate_all()
        self.assertEqual(self.sql("SELECT callback_allowed, orgunit_scope, dataset_scope, may_delete FROM users"
                                  " WHERE uid = 'OldUser0001'"), [(False, [], [], False)])
