"""Users imported from the Go dhis2gw log in with their old passwords (bcrypt), then hold argon2id hashes."""
from __future__ import annotations

import tempfile
from pathlib import Path

from twisted.internet import threads

from dhis2gw.legacy.importer import import_legacy
from tests.auth.harness import AuthApiTestCase
from tests.legacy.support import LEGACY_TZ, connect, legacy_database, seed_user

LIMS_TOKEN = "5e7d" * 10  # what the original's getToken handed out: 40 hex characters


class ImportedLoginTests(AuthApiTestCase):
    """The users API of an in-process gateway on a real port, over a database filled by import_legacy."""

    async def import_users(self) -> None:
        legacy = legacy_database(7)  # its seeded admin/@dm1n is in there
        conn = connect(legacy)
        seed_user(conn, "emr", "Emr-Old-Password-1", uid="uEmrSystem1")
        seed_user(conn, "lims", "Lims-Old-Password-1", uid="uLimsSyst01")
        with conn.cursor() as cur:
            cur.execute("INSERT INTO user_apitoken (user_id, token, expires_at)"
                        " SELECT id, %s, now() + interval '9 days' FROM users WHERE username = 'lims'", (LIMS_TOKEN,))
        conn.close()
        self.scanner.add_secret(LIMS_TOKEN, "an imported API token")
        for password in ("Emr-Old-Password-1", "Lims-Old-Password-1", "@dm1n"):
            self.scanner.add_secret(password, "an imported user's password")
        workdir = Path(tempfile.mkdtemp(prefix="legacy-login-"))
        summary = await threads.deferToThread(
            import_legacy, legacy, self.db.dsn, timezone=LEGACY_TZ, servers_out=str(workdir / "s.yml"),
            env_out=str(workdir / "s.env"))
        self.assertEqual(summary.tables["users"].inserted, 3)

    async def stored_hash(self, username: str) -> str:
        row = await self.db.fetch_one("t", "SELECT password_hash FROM users WHERE username = %s", (username,))
        assert row is not None
        return str(row["password_hash"])

    async def test_old_passwords_work_then_the_hash_is_argon2id(self) -> None:
        """Basic and getToken accept the bcrypt password; afterwards the stored hash is argon2id and still works."""
        await self.import_users()
        self.assertTrue((await self.stored_hash("emr")).startswith("$2a$"))
        status, body, _ = await self.call("GET", "/dummy/any", headers=self.basic("emr", "Emr-Old-Password-1"))
        self.assertEqual(status, 200, body)
        self.assertEqual(body, {"role": "submitter"})
        self.assertTrue((await self.stored_hash("emr")).startswith("$argon2id$"))
        # getToken with a JSON body (lims: still bcrypt) and the original's way (Basic, no body)
        self.assertTrue((await self.stored_hash("lims")).startswith("$2a$"))
        tokens = await self.login("lims", "Lims-Old-Password-1")
        self.assertIn("access_token", tokens)
        self.assertTrue((await self.stored_hash("lims")).startswith("$argon2id$"))
        status, body, _ = await self.call("POST", "/users/getToken", headers=self.basic("emr", "Emr-Old-Password-1"))
        self.assertEqual(status, 200, body)
        # the new argon2id hashes verify the same passwords
        self.clock.advance(3600)  # past the Basic cache
        status, _, _ = await self.call("GET", "/dummy/any", headers=self.basic("lims", "Lims-Old-Password-1"))
        self.assertEqual(status, 200)

    async def test_imported_api_token_works(self) -> None:
        """A client configured with the original's `Token <hex>` keeps working; another token does not."""
        await self.import_users()
        status, body, _ = await self.call("GET", "/dummy/any", headers={"Authorization": f"Token {LIMS_TOKEN}"})
        self.assertEqual((status, body), (200, {"role": "submitter"}))
        status, _, _ = await self.call("GET", "/dummy/any", headers={"Authorization": "Token " + "0" * 40})
        self.assertEqual(status, 401)

    async def test_wrong_password_and_seeded_admin_are_refused(self) -> None:
        """A wrong password is a 401 and leaves the bcrypt hash; the seeded admin/@dm1n cannot log in."""
        await self.import_users()
        status, body, _ = await self.call("GET", "/dummy/any", headers=self.basic("emr", "Emr-Wrong-Password"))
        self.assertEqual((status, body["error"]["code"]), (401, "invalid_credentials"))
        status, _, _ = await self.call("POST", "/users/getToken", {"username": "emr", "password": "nope-nope-nope"})
        self.assertEqual(status, 401)
        self.assertTrue((await self.stored_hash("emr")).startswith("$2a$"))
        for attempt in (self.call("GET", "/dummy/any", headers=self.basic("admin", "@dm1n")),
                        self.call("POST", "/users/getToken", {"username": "admin", "password": "@dm1n"}),
                        self.call("POST", "/users/getToken", headers=self.basic("admin", "@dm1n"))):
            status, body, _ = await attempt
            self.assertEqual((status, body["error"]["code"]), (401, "invalid_credentials"))
        row = await self.db.fetch_one("t", "SELECT is_active, role FROM users WHERE username = 'admin'")
        self.assertEqual(row, {"is_active": False, "role": "admin"})
