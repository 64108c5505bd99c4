"""The secrets scanner itself, and a scan over a session that handles every kind of secret."""
from __future__ import annotations

from twisted.logger import Logger
from twisted.trial.unittest import SynchronousTestCase

from tests.auth.harness import AuthApiTestCase
from tests.support.secrets_scan import SecretsScanner


class SecretsScannerTests(SynchronousTestCase):
    """The scanner finds what it must (so a clean scan means something)."""

    def test_finds_every_kind(self) -> None:
        """Hashes, JWTs, API tokens, registered literals and secrets in log events are reported."""
        scanner = SecretsScanner()
        scanner.add_secret("Dhis2-District-Pw", "DHIS2 password")
        stop = scanner.capture_logs()
        try:
            Logger().info("connecting with {auth}", auth="Dhis2-District-Pw")
        finally:
            stop()
        scanner.check_log_lines()
        scanner.check_text("a", "$argon2id$v=19$m=1024,t=1,p=1$abc$def")
        scanner.check_text("b", "x eyJhbGciOiJI.eyJzdWIiOiJ4.c2lnbmF0dXJl y")
        scanner.check_text("c", "dgw_" + "A" * 43)
        scanner.check_text("d", "$2a$10$" + "x" * 53)
        scanner.check_response("e", b'{"access_token": "eyJhbGciOiJI.eyJzdWIiOiJ4.c2ln", "expires_in": 1}',
                               issues_credentials=True)
        self.assertEqual(scanner.findings, ["log line 0: contains the DHIS2 password", "a: contains a argon2 hash",
                                            "b: contains a JWT", "c: contains a API token",
                                            "d: contains a bcrypt hash"])


class SessionSecretsTests(AuthApiTestCase):
    """Exercises logins, refreshes, API tokens, password changes and DHIS2 credentials in bodies;
    the harness then scans every response, log line and request_log row (and fails on a finding)."""

    async def test_a_secret_heavy_session_leaks_nothing(self) -> None:
        """Nothing secret shows up anywhere, and the scan really covered responses, logs and rows."""
        pair = await self.login("root-admin", self.admin_password)
        self.scanner.add_secret(pair["access_token"], "access token")
        self.scanner.add_secret(pair["refresh_token"], "refresh token")
        _, pair2, _ = await self.call("POST", "/users/refreshToken", {"refresh_token": pair["refresh_token"]})
        await self.call("POST", "/users/refreshToken", {"refresh_token": pair["refresh_token"]})  # reuse: logged warn
        # the reuse ended every JWT of the user (issue 16, F16): log in again
        status, _, _ = await self.call("GET", "/dummy/any",
                                       headers={"Authorization": "Bearer " + pair2["access_token"]})
        self.assertEqual(status, 401)
        pair3 = await self.login("root-admin", self.admin_password)
        self.scanner.add_secret(pair3["access_token"], "access token")
        self.scanner.add_secret(pair3["refresh_token"], "refresh token")
        headers = {"Authorization": "Bearer " + pair3["access_token"]}
        self.scanner.add_secret("Dhis2-District-Pw", "DHIS2 password")
        self.scanner.add_secret("d2pat_abcdefghijklmnopqrstuvwxyz0123", "DHIS2 PAT")
        await self.call("POST", "/dummy/operator/7", {"dhis2_password": "Dhis2-District-Pw",
                                                      "pat": "d2pat_abcdefghijklmnopqrstuvwxyz0123",
                                                      "servers": [{"password": "Dhis2-District-Pw"}]}, headers=headers)
        status, user, _ = await self.call("POST", "/users", {"username": "pw-user", "password": "Pw-User-Password-1"},
                                          headers=headers)
        self.scanner.add_secret("Pw-User-Password-1", "password")
        _, token, _ = await self.call("POST", f"/users/{user['uid']}/tokens", {}, headers=headers)
        self.scanner.add_secret(token["token"], "API token")
        await self.call("GET", "/dummy/any", headers={"Authorization": "Token " + token["token"]})
        await self.call("GET", "/dummy/any", headers=self.basic("pw-user", "Pw-User-Password-1"))
        await self.call("GET", "/dummy/any", headers=self.basic("pw-user", "Wrong-Password-1"))
        await self.call("PUT", f"/users/{user['uid']}", {"password": "Pw-User-Password-2"}, headers=headers)
        self.scanner.add_secret("Pw-User-Password-2", "password")
        await self.call("GET", f"/requests?access_token={pair2['access_token']}", headers=headers)
        await self.writer.flush()
        rows = await self.db.fetch("t", "SELECT body_excerpt FROM request_log WHERE endpoint LIKE %s",
                                   ("%operator%",))
        self.assertIn('"dhis2_password":"***"', rows[0]["body_excerpt"])
        self.assertGreater(len(self.scanner.log_lines), 0)
