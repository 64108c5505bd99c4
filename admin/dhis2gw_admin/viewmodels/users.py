"""UsersVM (administrators only): list, create, deactivate, reset a password, set a submitter's permissions."""
from __future__ import annotations

import re
from typing import Any

from dhis2gw_admin.api import GatewayApi
from dhis2gw_admin.observable import Field
from dhis2gw_admin.viewmodels.base import ViewModel, short_time

ROLES = ("admin", "operator", "submitter")
_UID = re.compile(r"^[A-Za-z][A-Za-z0-9]{10}$")


def uid_list(text: str) -> list[str]:
    """``"ImspTQPwCqd, O6uvpzGd5pu"`` (commas, spaces or new lines) → the UIDs, in order, once each."""
    return list(dict.fromkeys(part for part in re.split(r"[\s,;]+", text) if part))


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

    async def set_permissions(self, uid: str, *, source_name: str, orgunit_scope: str, dataset_scope: str,
                              may_delete: bool, callback_allowed: bool) -> dict[str, Any] | None:
        """Set what a user may submit: its source name (which mapping sheet applies), the org units
        (with their subtrees) and data sets it may send data for (empty: all), whether it may delete
        values and whether it may name a callback URL. The user's record, or None (``error`` names
        the field)."""
        if self._refused():
            return None
        scopes = {"orgunit_scope": uid_list(orgunit_scope), "dataset_scope": uid_list(dataset_scope)}
        for name, uids in scopes.items():
            bad = [u for u in uids if not _UID.match(u)]
            if bad:
                what = "Org units" if name == "orgunit_scope" else "Data sets"
                self.error = f"{what}: {bad[0]!r} is not a DHIS2 UID (11 letters and digits, a letter first)."
                return None
        body: dict[str, Any] = {"source_name": source_name.strip() or None, **scopes, "may_delete": may_delete,
                                "callback_allowed": callback_allowed}
        return await self.act(self.api.update_user(uid, body), lambda u: f"Permissions of {u['username']} saved",
                              self.load)
