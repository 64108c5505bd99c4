"""The /users endpoints: create, list, read, update, deactivate."""
from __future__ import annotations

from tests.auth.harness import AuthApiTestCase
from tests.auth.test_sessions import json_keys

USER_KEYS = {"uid", "username", "email", "full_name", "telephone", "role", "source_name", "is_active",
             "created_at", "updated_at", "last_login_at", "callback_allowed", "orgunit_scope", "dataset_scope",
             "may_delete"}


class UsersApiTests(AuthApiTestCase):
    """Admins manage users; others only read and edit themselves."""

    async def test_create_read_and_login(self) -> None:
        """POST /users creates a user whose JSON has exactly the public keys, and who can log in."""
        self.scanner.add_secret("Nurse-Password-77", "new user's password")
        status, body, _ = await self.call("POST", "/users", {
            "username": "nurse.jane", "password": "Nurse-Password-77", "email": "jane@example.org",
            "full_name": "Jane N", "telephone": "+256700000001", "role": "submitter", "source_name": "eidsr"},
            headers=self.bearer(self.admin))
        self.assertEqual(status, 201, body)
        self.assertEqual(set(body), USER_KEYS)
        self.assertEqual((body["username"], body["role"], body["source_name"], body["is_active"]),
                         ("nurse.jane", "submitter", "eidsr", True))
        self.assertRegex(body["uid"], r"^[A-Za-z][A-Za-z0-9]{10}$")
        status, read, _ = await self.call("GET", f"/users/{body['uid']}", headers=self.bearer(self.admin))
        self.assertEqual((status, read), (200, body))
        await self.login("Nurse.Jane", "Nurse-Password-77")
        stored = await self.db.fetch_one("t", "SELECT password_hash FROM users WHERE uid = %s", (body["uid"],))
        self.assertTrue(stored["password_hash"].startswith("$argon2id$"))

    async def test_original_field_names_and_post_user(self) -> None:
        """POST /user accepts the original's firstName/lastName/isAdminUser fields."""
        status, body, _ = await self.call("POST", "/user", {
            "username": "legacy", "password": "Legacy-Password-1", "firstName": "Old", "lastName": "Client",
            "isAdminUser": True, "isActive": True}, headers=self.bearer(self.admin))
        self.scanner.add_secret("Legacy-Password-1", "password")
        self.assertEqual((status, body["full_name"], body["role"]), (201, "Old Client", "admin"))

    async def test_duplicate_and_weak_and_invalid(self) -> None:
        """Duplicate usernames (any case) are 409; weak passwords and unknown fields are 400 naming the problem."""
        headers = self.bearer(self.admin)
        status, body, _ = await self.call("POST", "/users", {"username": "ROOT-ADMIN", "password": "Another-Pass-1"},
                                          headers=headers)
        self.assertEqual((status, body["error"]["code"]), (409, "username_taken"))
        status, body, _ = await self.call("POST", "/users", {"username": "weakling", "password": "short"},
                                          headers=headers)
        self.assertEqual((status, body["error"]["code"]), (400, "weak_password"))
        self.assertIn("at least 10 characters", body["error"]["details"]["problems"][0])
        status, body, _ = await self.call("POST", "/users", {"username": "samesame12", "password": "SameSame12"},
                                          headers=headers)
        self.assertEqual(body["error"]["details"]["problems"], ["the password must not be the username"])
        status, body, _ = await self.call("POST", "/users", {"username": "x", "password": "Xx-Password-1",
                                                             "dhis2_password": "Dhis2-Secret-Pw"}, headers=headers)
        self.scanner.add_secret("Dhis2-Secret-Pw", "DHIS2 password")
        self.assertEqual((status, body["error"]["code"]), (400, "validation_failed"))
        status, body, _ = await self.call("POST", "/users", {"username": "has:colon", "password": "Xx-Password-1"},
                                          headers=headers)
        self.assertEqual(status, 400)

    async def test_list_filters_and_pagination(self) -> None:
        """GET /users filters by role, active, q and username and pages with total and total_pages."""
        for i in range(5):
            await self.make_user(f"sub{i}", "submitter", "Sub-Password-1", full_name=f"Clinic {i}",
                                 is_active=i != 4)
        await self.make_user("ops", "operator", "Ops-Password-1")
        headers = self.bearer(self.admin)
        status, body, _ = await self.call("GET", "/users?role=submitter&page_size=2&page=2", headers=headers)
        self.assertEqual(status, 200)
        self.assertEqual((body["total"], body["total_pages"], body["page"], body["page_size"]), (5, 3, 2, 2))
        self.assertEqual([u["username"] for u in body["items"]], ["sub2", "sub1"])
        _, body, _ = await self.call("GET", "/users?role=submitter&active=false", headers=headers)
        self.assertEqual([u["username"] for u in body["items"]], ["sub4"])
        _, body, _ = await self.call("GET", "/users?q=clinic%203", headers=headers)
        self.assertEqual([u["username"] for u in body["items"]], ["sub3"])
        _, body, _ = await self.call("GET", "/users?username=OPS", headers=headers)
        self.assertEqual([u["role"] for u in body["items"]], ["operator"])
        self.assertFalse({"password", "password_hash"} & json_keys(body))
        status, body, _ = await self.call("GET", "/users?page_size=1000", headers=headers)
        self.assertEqual((status, body["error"]["details"]["parameter"]), (400, "page_size"))

    async def test_admin_updates_anything_but_its_own_role(self) -> None:
        """An admin changes another user's role and name; changing its own role is refused."""
        user = await self.make_user("promote", "submitter", "Promote-Password-1")
        status, body, _ = await self.call("PUT", f"/users/{user['uid']}", {"role": "operator", "full_name": "P"},
                                          headers=self.bearer(self.admin))
        self.assertEqual((status, body["role"], body["full_name"]), (200, "operator", "P"))
        status, body, _ = await self.call("PUT", f"/users/{self.admin['uid']}", {"role": "submitter"},
                                          headers=self.bearer(self.admin))
        self.assertEqual((status, body["error"]["code"]), (409, "self_lockout"))
        status, body, _ = await self.call("PUT", "/users/AbCdEfGhIjK", {"full_name": "x"},
                                          headers=self.bearer(self.admin))
        self.assertEqual((status, body["error"]["code"]), (404, "not_found"))

    async def test_self_edit_is_restricted(self) -> None:
        """A submitter edits its own name; role, other users and a password without old_password are refused."""
        me = await self.make_user("self.editor", "submitter", "Self-Password-1")
        other = await self.make_user("other", "submitter", "Other-Password-1")
        headers = self.bearer(me)
        status, body, _ = await self.call("PUT", f"/users/{me['uid']}", {"full_name": "Me", "telephone": "123"},
                                          headers=headers)
        self.assertEqual((status, body["full_name"], body["telephone"]), (200, "Me", "123"))
        status, body, _ = await self.call("PUT", f"/users/{me['uid']}", {"role": "admin"}, headers=headers)
        self.assertEqual((status, body["error"]["details"]["fields"]), (403, ["role"]))
        status, body, _ = await self.call("PUT", f"/users/{other['uid']}", {"full_name": "x"}, headers=headers)
        self.assertEqual(status, 403)
        status, body, _ = await self.call("PUT", f"/users/{me['uid']}", {"password": "New-Self-Password-1"},
                                          headers=headers)
        self.assertEqual((status, body["error"]["code"]), (400, "old_password_required"))
        status, body, _ = await self.call("PUT", f"/users/{me['uid']}", {"password": "New-Self-Password-1",
                                                                          "old_password": "Wrong-Password-1"},
                                          headers=headers)
        self.assertEqual((status, body["error"]["code"]), (403, "invalid_old_password"))
        status, body, _ = await self.call("GET", f"/users/{me['uid']}", headers=headers)
        self.assertEqual((status, body["full_name"]), (200, "Me"))

    async def test_admin_cannot_deactivate_itself(self) -> None:
        """DELETE on one's own uid is refused so the last admin cannot lock everyone out."""
        status, body, _ = await self.call("DELETE", f"/users/{self.admin['uid']}", headers=self.bearer(self.admin))
        self.assertEqual((status, body["error"]["code"]), (409, "self_lockout"))
