"""LoginVM: server URL, username, password → a session; logout; the URL remembered."""
from __future__ import annotations

from dhis2gw_admin.client import GatewayClient, Session, normalise_server_url
from dhis2gw_admin.errors import GatewayError
from dhis2gw_admin.observable import Field
from dhis2gw_admin.settings import SettingsStore
from dhis2gw_admin.viewmodels.base import ViewModel


class LoginVM(ViewModel):
    """The login form and who is logged in."""

    server_url = Field("http://127.0.0.1:9090")
    username = Field("")
    logged_in = Field(False)
    role = Field("")
    is_admin = Field(False)

    def __init__(self, client: GatewayClient, settings: SettingsStore | None = None) -> None:
        self.client = client
        self.settings = settings
        remembered = settings.load() if settings else {}
        self.server_url = remembered.get("server_url", client.base_url)
        self.username = remembered.get("username", "")
        client.on_session_ended.append(self._expired)

    async def login(self, password: str, server_url: str | None = None, username: str | None = None) -> bool:
        """Log in; True on success. The password is used once and not kept."""
        if server_url is not None:
            self.server_url = server_url
        if username is not None:
            self.username = username
        if not self.username.strip() or not password:
            self.error = "Enter a username and a password."
            return False
        try:
            url = normalise_server_url(self.server_url)
        except GatewayError as e:
            self.error = str(e)
            return False
        self.client.set_server(url)
        session: Session | None = await self.guard(self.client.login(self.username.strip(), password))
        if session is None:
            return False
        self.server_url = url
        if self.settings is not None:
            self.settings.save(server_url=url, username=session.username)
        self.role = session.role
        self.is_admin = session.is_admin
        self.logged_in = True
        self.message = f"Logged in as {session.username} ({session.role})"
        return True

    def logout(self) -> None:
        """Forget the session; the screens go back to the login form."""
        self.client.logout()
        self._ended()
        self.message = "Logged out"

    def _expired(self) -> None:
        self._ended()
        self.error = "Your session has ended. Please log in again."

    def _ended(self) -> None:
        self.logged_in = False
        self.role = ""
        self.is_admin = False
