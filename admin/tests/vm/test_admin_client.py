"""The client and LoginVM against a real gateway: login, refresh before expiry, logout, errors."""
from __future__ import annotations

import json

from admin_rig import PASSWORD, AdminGatewayCase
from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from dhis2gw_admin.client import GatewayClient
from dhis2gw_admin.errors import AuthenticationFailed, ConnectionProblem, PermissionDenied
from dhis2gw_admin.settings import SettingsStore
from dhis2gw_admin.viewmodels.login import LoginVM


class ClientSessionTests(AdminGatewayCase):
    """Login → JWT, refresh, logout, and the plain-language errors."""

    async def test_wrong_password_is_a_plain_message(self) -> None:
        """A wrong password leaves the user logged out with the gateway's sentence, no traceback."""
        ok = await self.model.login.login("not-the-password", username="boss")
        self.assertFalse(ok)
        self.assertFalse(self.model.login.logged_in)
        self.assertNotIn("Traceback", self.model.login.error)
        self.assertTrue(self.model.login.error[0].isupper(), self.model.login.error)
        self.assertIn("invalid", self.model.login.error.lower())

    async def test_login_remembers_url_never_password(self) -> None:
        """A login records role/admin flag and saves the server URL and username — never the password."""
        model = await self.logged_in()
        self.assertTrue(model.login.logged_in)
        self.assertEqual(model.login.role, "admin")
        self.assertTrue(model.users.allowed)
        saved = json.loads(self.settings_path.read_text())
        self.assertEqual(saved, {"server_url": self.base, "username": "boss"})
        self.assertNotIn(PASSWORD, self.settings_path.read_text())
        again = LoginVM(GatewayClient(reactor, "http://example.invalid:1"), SettingsStore(self.settings_path))
        self.assertEqual(again.server_url, self.base)
        await again.client.close()

    async def test_refresh_before_expiry_then_logout(self) -> None:
        """Near expiry the client rotates the pair before the call; after logout calls are refused."""
        model = await self.logged_in()
        session = model.client.session
        assert session is not None
        first_access, first_refresh = session.access_token, session.refresh_token
        self.assertFalse(model.client.needs_refresh())
        session.access_expires_at = reactor.seconds() + 5  # as if 14m55s had passed
        self.assertTrue(model.client.needs_refresh())
        page = await model.api.list_logs({"page_size": 1})
        self.assertEqual(page["items"], [])
        assert model.client.session is not None
        self.assertNotEqual(model.client.session.refresh_token, first_refresh)
        self.assertNotEqual(model.client.session.access_token, first_access)
        self.assertFalse(model.client.needs_refresh())
        model.login.logout()
        self.assertFalse(model.login.logged_in)
        with self.assertRaises(AuthenticationFailed) as caught:
            await model.api.list_logs({})
        self.assertEqual(str(caught.exception), "You are not logged in.")

    async def test_spent_refresh_token_ends_session(self) -> None:
        """When the gateway refuses the refresh (token reused), the login screen comes back with a sentence."""
        model = await self.logged_in()
        session = model.client.session
        assert session is not None
        code, _ = await self.request_json("POST", "/api/v2/users/refreshToken",
                                          {"refresh_token": session.refresh_token})
        self.assertEqual(code, 200)  # someone spent our refresh token: reuse revokes the family
        session.access_expires_at = reactor.seconds()
        ok = await model.logs.load()
        self.assertFalse(ok)
        self.assertFalse(model.login.logged_in)
        self.assertEqual(model.login.error, "Your session has ended. Please log in again.")

    async def test_operator_cannot_list_users(self) -> None:
        """An operator is not an admin: the users VM refuses, and the API's 403 reads plainly."""
        model = await self.logged_in("oper")
        self.assertEqual(model.login.role, "operator")
        self.assertFalse(await model.users.load())
        self.assertEqual(model.users.error, "Only administrators can manage users.")
        with self.assertRaises(PermissionDenied) as caught:
            await model.api.list_users({})
        self.assertNotIn("Traceback", str(caught.exception))
        self.assertTrue(str(caught.exception))


class UnreachableTests(TestCase):
    """No gateway at the address."""

    async def test_refused_connection_is_explained(self) -> None:
        """A refused connection names the address and suggests the gateway is not running."""
        from dhis2gw.runtime.embedded import free_port

        client = GatewayClient(reactor, f"127.0.0.1:{free_port()}")
        self.addCleanup(client.close)
        vm = LoginVM(client)
        self.assertFalse(await vm.login("x", username="boss"))
        self.assertIn("Cannot reach the gateway at http://127.0.0.1:", vm.error)
        self.assertIn("refused", vm.error)

    async def test_bad_address(self) -> None:
        """A URL that is not http(s) is refused before any request."""
        vm = LoginVM(GatewayClient(reactor))
        self.assertFalse(await vm.login("x", server_url="ftp://somewhere", username="u"))
        self.assertIn("is not a web address", vm.error)
        client = GatewayClient(reactor, "127.0.0.1:1")
        self.addCleanup(client.close)
        with self.assertRaises(ConnectionProblem):
            await client._send("GET", "/health", auth=False)
