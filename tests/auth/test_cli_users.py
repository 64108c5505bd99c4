"""``create_user_command`` (behind ``dhis2gw createuser``)."""
from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from dhis2gw.auth.passwords import PasswordHasher
from dhis2gw.runtime.cli_users import create_user_command
from dhis2gw.storage.database import Database
from tests.support.services import migrated_database


class CreateUserCommandTests(TestCase):
    """The bootstrap path for the first admin."""

    def setUp(self) -> Any:
        self.db = Database(reactor, migrated_database(), size=1)
        self.db.startService()
        self.addCleanup(self.db.stopService)
        return self.db.started

    async def test_creates_an_admin_with_an_argon2_hash(self) -> None:
        """The user exists with the role, an argon2id hash of the password, and the message names its uid."""
        message = await create_user_command(self.db, "First.Admin", "admin", "Bootstrap-Password-1",
                                            email="a@example.org")
        row = await self.db.fetch_one("t", "SELECT uid, username, role, email, password_hash, is_active FROM users")
        self.assertEqual(message, f"created admin First.Admin (uid {row['uid']})")
        self.assertEqual((row["username"], row["role"], row["email"], row["is_active"]),
                         ("First.Admin", "admin", "a@example.org", True))
        self.assertNotIn("Bootstrap-Password-1", message)
        self.assertTrue(await PasswordHasher(reactor).verify(row["password_hash"], "Bootstrap-Password-1"))

    async def test_refuses_weak_passwords_duplicates_and_bad_roles(self) -> None:
        """Weak passwords, a username taken in another case and unknown roles are ValueErrors; nothing is written."""
        with self.assertRaisesRegex(ValueError, "at least 10 characters"):
            await create_user_command(self.db, "admin", "admin", "@dm1n")
        with self.assertRaisesRegex(ValueError, "must not be the username"):
            await create_user_command(self.db, "administrator", "admin", "ADMINISTRATOR")
        with self.assertRaisesRegex(ValueError, "unknown role"):
            await create_user_command(self.db, "someone", "root", "Some-Password-1")
        self.assertEqual(await self.db.fetch("t", "SELECT uid FROM users"), [])
        await create_user_command(self.db, "admin", "admin", "Good-Password-1")
        with self.assertRaisesRegex(ValueError, "already exists"):
            await create_user_command(self.db, "ADMIN", "operator", "Other-Password-1")
        rows = await self.db.fetch("t", "SELECT username FROM users")
        self.assertEqual(rows, [{"username": "admin"}])
