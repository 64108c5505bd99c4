"""The login screen: server URL, username, password."""
from __future__ import annotations

from typing import Any

from kivy.metrics import dp
from kivymd.uix.boxlayout import MDBoxLayout
from kivymd.uix.card import MDCard
from kivymd.uix.screen import MDScreen

from dhis2gw_admin.screens.widgets import ERROR_COLOR, button, field, label, shows_text
from dhis2gw_admin.viewmodels.login import LoginVM


class LoginScreen(MDScreen):
    """Binds to ``LoginVM``; the password field is emptied after every attempt."""

    def __init__(self, vm: LoginVM, **kw: Any) -> None:
        super().__init__(name="login", **kw)
        self.vm = vm
        card = MDCard(orientation="vertical", size_hint=(None, None), size=(dp(420), dp(420)), padding=dp(24),
                      spacing=dp(12), pos_hint={"center_x": 0.5, "center_y": 0.5}, style="elevated")
        self.server = field("Gateway address", vm.server_url)
        self.username = field("Username", vm.username)
        self.password = field("Password", password=True)
        self.password.bind(on_text_validate=lambda *_: self.submit())
        self.error = label("", color=ERROR_COLOR)
        self.login_button = button("Log in", self.submit, pos_hint={"center_x": 0.5})
        card.add_widget(label("dhis2gw admin", bold=True, role="large", halign="center"))
        for w in (self.server, self.username, self.password, self.login_button, self.error):
            card.add_widget(w)
        card.add_widget(MDBoxLayout())
        self.add_widget(card)
        vm.bind(error=shows_text(self.error),
                server_url=shows_text(self.server))

    def submit(self) -> None:
        password, self.password.text = self.password.text, ""
        self.vm.spawn(self.vm.login(password, server_url=self.server.text, username=self.username.text))
