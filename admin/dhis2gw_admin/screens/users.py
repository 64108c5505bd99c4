"""The users screen (administrators): list, create, deactivate, reset a password, set permissions."""
from __future__ import annotations

from typing import Any

from kivy.metrics import dp
from kivymd.uix.boxlayout import MDBoxLayout
from kivymd.uix.menu import MDDropdownMenu
from kivymd.uix.screen import MDScreen
from kivymd.uix.scrollview import MDScrollView
from kivymd.uix.selectioncontrol import MDCheckbox

from dhis2gw_admin.screens.widgets import (
    ERROR_COLOR,
    LoadsOnEnter,
    button,
    dialog,
    field,
    hbox,
    label,
    shows_text,
    vbox,
)
from dhis2gw_admin.viewmodels.users import ROLES, UsersVM


class UsersScreen(LoadsOnEnter, MDScreen):
    """Binds to ``UsersVM``."""

    def __init__(self, vm: UsersVM, **kw: Any) -> None:
        super().__init__(name="users", **kw)
        self.vm = vm
        self.new_username = field("Username", width=150)
        self.new_password = field("Password", password=True, width=170)
        # A role is one of three: a menu, not free text.
        self.new_role = "operator"
        self.role_button = button("Role: operator", self._role_menu, style="outlined", size_hint_x=None)
        self.new_name = field("Full name")
        self.message = label("")
        self.error = label("", color=ERROR_COLOR)
        self.rows = vbox(spacing=2)
        self.create_button = button("Create user", self.create, size_hint_x=None)
        top = vbox(hbox(self.new_username, self.new_password, self.role_button, self.new_name, self.create_button),
                   self.message, self.error,
                   hbox(*(label(t, bold=True, size_hint_x=w) for t, w in (
                       ("Username", 0.16), ("Role", 0.1), ("Full name", 0.16), ("State", 0.1), ("Last login", 0.14))),
                        label("", size_hint_x=0.34), height=32), spacing=6)
        scroll = MDScrollView()
        scroll.add_widget(self.rows)
        root = MDBoxLayout(orientation="vertical", padding=dp(12), spacing=dp(6))
        root.add_widget(top)
        root.add_widget(scroll)
        self.add_widget(root)
        vm.bind(items=self._rows, error=shows_text(self.error),
                message=shows_text(self.message))

    def _role_menu(self) -> None:
        def choose(role: str) -> None:
            self.role_menu.dismiss()
            self.choose_role(role)

        self.role_menu = MDDropdownMenu(caller=self.role_button,
                                        items=[{"text": r, "on_release": (lambda r=r: choose(r))} for r in ROLES])
        self.role_menu.open()

    def choose_role(self, role: str) -> None:
        self.new_role = role
        self.role_button.children[0].text = f"Role: {role}"

    def create(self) -> None:
        password, self.new_password.text = self.new_password.text, ""
        self.vm.spawn(self.vm.create(self.new_username.text, password, self.new_role, full_name=self.new_name.text))

    def _rows(self, _vm: Any, items: list[dict[str, Any]]) -> None:
        self.rows.clear_widgets()
        for u in items:
            row = hbox(height=40)
            for text, w in ((u["username"], 0.16), (u["role"], 0.1), (u.get("full_name") or "", 0.16),
                            (u["state"], 0.1), (u["last_login"], 0.14)):
                row.add_widget(label(str(text), size_hint_x=w, shorten=True))
            actions = hbox(height=40, size_hint_x=0.34)
            actions.add_widget(button("Permissions", lambda u=u: self.permissions(u), style="text"))
            actions.add_widget(button("Reset password", lambda uid=u["uid"], n=u["username"]: self.reset(uid, n),
                                      style="text"))
            if u.get("is_active"):
                actions.add_widget(button("Deactivate", lambda uid=u["uid"], n=u["username"]: self.deactivate(uid, n),
                                          style="text"))
            row.add_widget(actions)
            self.rows.add_widget(row)

    def reset(self, uid: str, username: str) -> None:
        new = field("New password", password=True)
        self.dialog = dialog(f"Reset the password of {username}", "The user logs in with the new password.",
                             [("Cancel", None), ("Set password", lambda: self.vm.spawn(self.vm.reset_password(
                                 uid, new.text)))], content=new)

    def deactivate(self, uid: str, username: str) -> None:
        self.dialog = dialog(f"Deactivate {username}?", "The user can no longer log in; its tokens are revoked.",
                             [("Cancel", None), ("Deactivate", lambda: self.vm.spawn(self.vm.deactivate(uid)))])

    def permissions(self, user: dict[str, Any]) -> None:
        """The permissions dialog of ``user``: source name, org unit and data set scopes, two switches."""
        self.source = field("Source name (the mapping sheet's)", user.get("source_name") or "")
        self.orgunits = field("Org units (UIDs, comma-separated; empty: all)",
                              ", ".join(user.get("orgunit_scope") or []))
        self.datasets = field("Data sets (UIDs, comma-separated; empty: all)",
                              ", ".join(user.get("dataset_scope") or []))
        self.may_delete = MDCheckbox(active=bool(user.get("may_delete")), size_hint_x=None, width=dp(48))
        self.callback_allowed = MDCheckbox(active=bool(user.get("callback_allowed")), size_hint_x=None,
                                           width=dp(48))
        content = vbox(self.source, self.orgunits, self.datasets,
                       hbox(self.may_delete, label("May delete data values")),
                       hbox(self.callback_allowed, label("May name a callback URL")))

        def save() -> None:
            self.vm.spawn(self.vm.set_permissions(
                user["uid"], source_name=self.source.text, orgunit_scope=self.orgunits.text,
                dataset_scope=self.datasets.text, may_delete=self.may_delete.active,
                callback_allowed=self.callback_allowed.active))

        self.dialog = dialog(f"Permissions of {user['username']}",
                             "What this user may submit: empty scopes are no limit; administrators may always delete.",
                             [("Cancel", None), ("Save", save)], content=content)
