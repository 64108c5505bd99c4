"""UsersVM (administrators only): list, create, deactivate, reset a password."""
from __future__ import annotations

from typing import Any

from dhis2gw_admin.api import GatewayApi
from dhis2gw_admin.observable import Field
from dhis2gw_admin.viewmodels.base import ViewModel, short_time

ROLES = ("admin", "operator", "submitter")


class UsersVM(ViewModel):
    """The users screen; ``allowed`` is False for non-admins (the screen is then hidden)."""

    items = Field([])
    total = Field(0)
    page = Field(1)
    page_size = Field(50)
    text = Field("")
    allowed = Field(False)

    def __init__(self, api: GatewayApi) -> None:
        self.api = api

    def _refused(self) -> bool:
        if not self.allowed:
            self.error = "Only administrators can manage users."
            return True
        return False

    async def _load(self) -> bool:
        answer = await self.api.list_users({"q": self.text.strip() or None, "page": self.page,
                                            "page_size": self.page_size})
        self.total = int(answer.get("total") or 0)
        self.items = [{**u, "last_login": short_time(u.get("last_login_at")) or "never",
                       "state": "active" if u.get("is_active") else "deactivated"} for u in answer.get("items", [])]
        return True

    async def load(self) -> bool:
        if self._refused():
            return False
        return bool(await self.guard(self._load()))

    async def create(self, username: str, password: str, role: str = "operator", full_name: str = "",
                     email: str = "", source_name: str = "") -> dict[str, Any] | None:
        """Create a user; its public record, or None (``error`` says why: taken, weak password…)."""
        if self._refused():
            return None
        if role not in ROLES:
            self.error = f"Choose a role: {', '.join(ROLES)}."
            return None
        body: dict[str, Any] = {"username": username.strip(), "password": password, "role": role}
        for key, value in (("full_name", full_name), ("email", email), ("source_name", source_name)):
            if value.strip():
                body[key] = value.strip()
        return await self.act(self.api.create_user(body), lambda u: f"User {u['username']} created ({u['role']})",
                              self.load)

    async def deactivate(self, uid: str) -> bool:
        if self._refused():
            return False
        user = await self.act(self.api.deactivate_user(uid),
                              lambda u: f"User {u['username']} deactivated; their tokens are revoked", self.load)
        return user is not None

    async def reset_password(self, uid: str, new_password: str) -> bool:
        """Set another user's password (an admin needs no old password for someone else)."""
        if self._refused():
            return False
        user = await self.act(self.api.update_user(uid, {"password": new_password}),
                              lambda u: f"Password of {u['username']} changed")
        return user is not None
