"""getToken, refresh rotation with reuse detection, and revocation on password change / deactivation."""
from __future__ import annotations

import jwt

from dhis2gw.auth.tokens import new_api_token
from tests.auth.harness import JWT_SECRET, AuthApiTestCase


class SessionTests(AuthApiTestCase):
    """Tokens are issued, rotated and revoked as DESIGN.md §6 and issue 3 require."""

    async def test_get_token_issues_signed_claims(self) -> None:
        """getToken answers the token pair; the access JWT carries sub, role, jti, iat, exp, iss and ep."""
        pair = await self.login("ROOT-admin", self.admin_password)  # usernames are case-insensitive
        self.assertEqual((pair["token_type"], pair["expires_in"]), ("Bearer", 900))
        claims = jwt.decode(pair["access_token"], JWT_SECRET, algorithms=["HS256"], issuer="dhis2gw-test",
                            options={"verify_exp": False})
        self.assertEqual((claims["sub"], claims["role"], claims["ep"], claims["typ"]),
                         (self.admin["uid"], "admin", 0, "access"))
        self.assertEqual(claims["exp"] - claims["iat"], 900)
        status, body, _ = await self.call("GET", f"/users/{self.admin['uid']}",
                                          headers={"Authorization": "Bearer " + pair["access_token"]})
        self.assertEqual((status, body["username"]), (200, "root-admin"))
        self.assertIsNotNone(body["last_login_at"])
        self.assertNotIn("password_hash", body)

    async def test_bad_login_is_generic(self) -> None:
        """Unknown user, wrong password and inactive user get the same 401 body (no user enumeration)."""
        await self.make_user("sleeper", "submitter", "Sleeper-Password-1", is_active=False)
        answers = []
        for username, password in (("nobody", "Whatever-Password-1"), ("root-admin", "Wrong-Password-1"),
                                   ("sleeper", "Sleeper-Password-1")):
            status, body, _ = await self.call("POST", "/users/getToken", {"username": username, "password": password})
            answers.append((status, body))
        self.assertEqual(answers, [(401, {"error": {"code": "invalid_credentials",
                                                     "message": "invalid username or password"}})] * 3)

    async def test_get_token_with_basic_and_no_body(self) -> None:
        """The original's clients call getToken with Basic credentials and no body: they get a pair."""
        status, body, _ = await self.call("POST", "/users/getToken",
                                          headers=self.basic("root-admin", self.admin_password))
        self.assertEqual(status, 200, body)
        self.assertEqual(body["token_type"], "Bearer")
        # ...but an access token cannot be exchanged for a fresh (long-lived) pair
        status, body, _ = await self.call("POST", "/users/getToken", headers=self.bearer(self.admin))
        self.assertEqual((status, body["error"]["code"]), (401, "unauthenticated"))

    async def test_refresh_rotates_and_reuse_revokes_the_family(self) -> None:
        """A refresh token works once; replaying a spent one revokes every token of its family."""
        first = await self.login("root-admin", self.admin_password)
        status, second, _ = await self.call("POST", "/users/refreshToken", {"refresh_token": first["refresh_token"]})
        self.assertEqual(status, 200, second)
        self.assertNotEqual(second["refresh_token"], first["refresh_token"])
        fam = jwt.decode(first["refresh_token"], options={"verify_signature": False})["fam"]
        self.assertEqual(jwt.decode(second["refresh_token"], options={"verify_signature": False})["fam"], fam)
        status, third, _ = await self.call("POST", "/users/refreshToken", {"refresh_token": second["refresh_token"]})
        self.assertEqual(status, 200)
        # replay of the first (spent) token: refused, and the live third one dies with it
        status, body, headers = await self.call("POST", "/users/refreshToken",
                                                {"refresh_token": first["refresh_token"]})
        self.assertEqual((status, body["error"]["code"]), (401, "invalid_token"))
        self.assertIn("already used", body["error"]["message"])
        self.assertIn("Bearer", headers["www-authenticate"])
        status, body, _ = await self.call("POST", "/users/refreshToken", {"refresh_token": third["refresh_token"]})
        self.assertEqual((status, body["error"]["code"]), (401, "invalid_token"))
        # F16: the family's access tokens end too (they were valid until expiry)
        for pair in (second, third):
            status, _, _ = await self.call("GET", "/dummy/any",
                                           headers={"Authorization": "Bearer " + pair["access_token"]})
            self.assertEqual(status, 401)
        family = await self.auth.tokens.refresh_family_state(fam)
        self.assertEqual(len(family), 3)
        self.assertTrue(all(r["revoked_at"] is not None for r in family))
        # a separate login is a separate family and is unaffected
        other = await self.login("root-admin", self.admin_password)
        status, _, _ = await self.call("POST", "/users/refreshToken", {"refresh_token": other["refresh_token"]})
        self.assertEqual(status, 200)

    async def test_access_token_is_not_a_refresh_token(self) -> None:
        """An access token presented to refreshToken, or an expired refresh token, is refused."""
        pair = await self.login("root-admin", self.admin_password)
        status, body, _ = await self.call("POST", "/users/refreshToken", {"refresh_token": pair["access_token"]})
        self.assertEqual((status, body["error"]["code"]), (401, "invalid_token"))
        self.clock.advance(7 * 86400 + 1)
        status, body, _ = await self.call("POST", "/users/refreshToken", {"refresh_token": pair["refresh_token"]})
        self.assertEqual((status, body["error"]["code"]), (401, "token_expired"))

    async def _all_credentials(self, username: str, password: str, uid: str) -> dict[str, dict[str, str]]:
        pair = await self.login(username, password)
        token = new_api_token()
        user = await self.auth.users.get(uid)
        assert user is not None
        await self.auth.tokens.create_api_token(user["id"], token.token_hash, token.prefix, None, None)
        creds = {"bearer": {"Authorization": "Bearer " + pair["access_token"]},
                 "basic": self.basic(username, password),
                 "token": {"Authorization": "Token " + token.token}}
        for name, headers in creds.items():  # all work, and the Basic / token caches are now warm
            status, body, _ = await self.call("GET", "/dummy/any", headers=headers)
            self.assertEqual((name, status), (name, 200))
        creds["refresh"] = {"refresh_token": pair["refresh_token"]}
        return creds

    async def _assert_all_revoked(self, creds: dict[str, dict[str, str]]) -> None:
        for name in ("bearer", "basic", "token"):
            status, body, _ = await self.call("GET", "/dummy/any", headers=creds[name])
            self.assertEqual((name, status), (name, 401), body)
        status, body, _ = await self.call("POST", "/users/refreshToken", creds["refresh"])
        self.assertEqual((status, body["error"]["code"]), (401, "invalid_token"))

    async def test_password_change_revokes_everything(self) -> None:
        """Changing one's password voids its JWTs, refresh tokens, cached Basic credentials and API tokens."""
        user = await self.make_user("changer", "submitter", "Changer-Password-1")
        creds = await self._all_credentials("changer", "Changer-Password-1", user["uid"])
        status, body, _ = await self.call("PUT", f"/users/{user['uid']}",
                                          {"password": "Changer-Password-2", "old_password": "Changer-Password-1"},
                                          headers=creds["bearer"])
        self.scanner.add_secret("Changer-Password-2", "new password")
        self.assertEqual(status, 200, body)
        self.assertNotIn("password", json_keys(body))
        await self._assert_all_revoked(creds)
        tokens = await self.auth.tokens.list_api_tokens(user["id"])
        self.assertEqual([t["is_active"] for t in tokens], [False])
        await self.login("changer", "Changer-Password-2")

    async def test_deactivation_revokes_everything(self) -> None:
        """DELETE /users/{uid} deactivates (row kept) and voids every credential of the user at once."""
        user = await self.make_user("leaver", "operator", "Leaver-Password-1")
        creds = await self._all_credentials("leaver", "Leaver-Password-1", user["uid"])
        status, body, _ = await self.call("DELETE", f"/users/{user['uid']}", headers=self.bearer(self.admin))
        self.assertEqual((status, body["is_active"], body["username"]), (200, False, "leaver"))
        await self._assert_all_revoked(creds)
        status, body, _ = await self.call("POST", "/users/getToken",
                                          {"username": "leaver", "password": "Leaver-Password-1"})
        self.assertEqual(status, 401)
        self.assertIsNotNone(await self.auth.users.get(user["uid"]))

    async def test_revoked_api_token_stops_at_once(self) -> None:
        """An admin revokes an API token through the API; the next request with it is a 401."""
        user = await self.make_user("robot", "submitter", "Robot-Password-1")
        status, created, _ = await self.call("POST", f"/users/{user['uid']}/tokens",
                                             {"description": "ci", "expires_in": 3600},
                                             headers=self.bearer(self.admin))
        self.assertEqual(status, 201, created)
        self.assertTrue(created["token"].startswith("dgw_"))
        headers = {"Authorization": "Token " + created["token"]}
        status, body, _ = await self.call("GET", "/dummy/any", headers=headers)
        self.assertEqual((status, body), (200, {"role": "submitter"}))
        status, listed, _ = await self.call("GET", f"/users/{user['uid']}/tokens", headers=self.bearer(self.admin))
        self.assertEqual([(t["id"], t["prefix"], t["is_active"]) for t in listed["items"]],
                         [(created["id"], created["token"][:10], True)])
        self.assertNotIn("token", json_keys(listed))
        status, _, _ = await self.call("DELETE", f"/users/{user['uid']}/tokens/{created['id']}",
                                       headers=self.bearer(self.admin))
        self.assertEqual(status, 200)
        status, body, _ = await self.call("GET", "/dummy/any", headers=headers)
        self.assertEqual((status, body["error"]["code"]), (401, "invalid_token"))

    async def test_api_token_expiry_follows_the_clock(self) -> None:
        """An API token with expires_in stops working once the clock passes its expiry."""
        user = await self.make_user("shortlived", "submitter", "Short-Password-1")
        _, created, _ = await self.call("POST", f"/users/{user['uid']}/tokens", {"expires_in": 60},
                                        headers=self.bearer(self.admin))
        headers = {"Authorization": "Token " + created["token"]}
        self.assertEqual((await self.call("GET", "/dummy/any", headers=headers))[0], 200)
        self.clock.advance(61)
        self.assertEqual((await self.call("GET", "/dummy/any", headers=headers))[0], 401)


def json_keys(value: object) -> set[str]:
    """Every key anywhere in a JSON value."""
    if isinstance(value, dict):
        return set(value) | set().union(*(json_keys(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(json_keys(v) for v in value)) if value else set()
    return set()


class HotPathTests(AuthApiTestCase):
    """The caches that keep the KDF and PyJWT off the hot path stay correct."""

    async def test_concurrent_basic_requests_share_one_verification(self) -> None:
        """20 simultaneous cold Basic requests with the same credentials run argon2 once, and all succeed."""
        from twisted.internet import defer

        calls = []
        verify = self.auth.hasher.verify

        async def counting_verify(encoded: object, password: str) -> bool:
            calls.append(1)
            return await verify(encoded, password)  # type: ignore[arg-type]

        self.auth.hasher.verify = counting_verify  # type: ignore[method-assign]
        headers = self.basic("root-admin", self.admin_password)
        results = await defer.gatherResults([defer.Deferred.fromCoroutine(self.call("GET", "/dummy/any",
                                                                                    headers=headers))
                                             for _ in range(20)])
        self.assertEqual({(s, b["role"]) for s, b, _ in results}, {(200, "admin")})
        self.assertEqual(len(calls), 1)

    async def test_cached_access_token_still_expires(self) -> None:
        """An access token used once (claims cached) is refused as expired once the clock passes exp."""
        headers = self.bearer(self.admin)
        self.assertEqual((await self.call("GET", "/dummy/any", headers=headers))[0], 200)
        self.clock.advance(901)
        status, body, _ = await self.call("GET", "/dummy/any", headers=headers)
        self.assertEqual((status, body["error"]["code"]), (401, "token_expired"))
