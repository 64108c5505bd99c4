"""The KivyMD application: a navigation bar and one screen per view model.

Import only after ``dhis2gw_admin.kivy_reactor.install()`` (``main`` does it).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from kivy.core.clipboard import Clipboard
from kivy.metrics import dp
from kivy.uix.screenmanager import NoTransition
from kivymd.app import MDApp
from kivymd.uix.boxlayout import MDBoxLayout
from kivymd.uix.screenmanager import MDScreenManager

from dhis2gw_admin.model import AdminModel
from dhis2gw_admin.screens.dashboard import DashboardScreen
from dhis2gw_admin.screens.detail import DetailScreen
from dhis2gw_admin.screens.login import LoginScreen
from dhis2gw_admin.screens.logs import LogsScreen
from dhis2gw_admin.screens.mappings import MappingsScreen
from dhis2gw_admin.screens.report import ReportScreen
from dhis2gw_admin.screens.users import UsersScreen
from dhis2gw_admin.screens.widgets import button, hbox, label
from dhis2gw_admin.settings import SettingsStore


class ScreenManager(MDScreenManager):
    """KivyMD's screen manager, keeping the transition it is given.

    ``MDScreenManager`` replaces any transition that is not one of KivyMD's with its
    ``MDSharedAxisTransition`` one frame after it is built; that animated fade could leave a screen
    part-faded after log out and log in again (the dashboard at 78 % opacity).
    """

    def check_transition(self, *args: Any) -> None:
        """Keep the transition set at construction."""

class AdminApp(MDApp):
    """dhis2gw admin.

    :param server_url: gateway address given on the command line (wins over the remembered one).
    :param settings_path: where the last server URL is remembered (default: the user data dir).
    """

    title = "dhis2gw admin"

    def __init__(self, reactor: Any, server_url: str | None = None, settings_path: str | None = None,
                 **kw: Any) -> None:
        super().__init__(**kw)
        self.reactor = reactor
        self.server_url = server_url
        self.settings_path = settings_path
        self.model: AdminModel | None = None

    def build(self) -> Any:
        self.theme_cls.primary_palette = "Teal"
        self.theme_cls.set_colors()
        settings = SettingsStore(self.settings_path or Path(self.user_data_dir) / "settings.json")
        model = self.model = AdminModel(self.reactor, self.server_url, settings, clipboard=Clipboard.copy,
                                        force_server=bool(self.server_url))
        # No animated transition: KivyMD's MDFadeSlideTransition alternates its direction ("in", then
        # "out") at every switch, and a screen that left with an "out" stays faded out and moved away
        # when it comes back with another "out" — the dashboard after log out and log in again was
        # such a blank screen, its data loaded and invisible.
        self.manager = ScreenManager(transition=NoTransition())
        self.screens = {
            "login": LoginScreen(model.login),
            "dashboard": DashboardScreen(model.dashboard),
            "logs": LogsScreen(model.logs, self.open_detail),
            "detail": DetailScreen(model.detail, lambda: self.show("logs")),
            "report": ReportScreen(model.report),
            "mappings": MappingsScreen(model.mappings),
            "users": UsersScreen(model.users),
        }
        for screen in self.screens.values():
            self.manager.add_widget(screen)
        self.who = label("", size_hint_x=None, width=dp(220), halign="right")
        self.nav_buttons = {name: button(caption, lambda n=name: self.show(n), style="text", size_hint_x=None)
                            for name, caption in (("dashboard", "Dashboard"), ("logs", "Logs"),
                                                  ("report", "Report"), ("mappings", "Mappings"),
                                                  ("users", "Users"))}
        self.logout_button = button("Log out", model.login.logout, style="outlined", size_hint_x=None)
        self.nav = hbox(label("dhis2gw admin", bold=True, role="large", size_hint_x=None, width=dp(180)),
                        *self.nav_buttons.values(), label(""), self.who, self.logout_button, height=56,
                        padding=(dp(12), 0))
        self.nav.md_bg_color = self.theme_cls.surfaceContainerColor
        root = MDBoxLayout(orientation="vertical", md_bg_color=self.theme_cls.backgroundColor)
        root.add_widget(self.nav)
        root.add_widget(self.manager)
        model.login.bind(logged_in=self._logged_in)
        self._logged_in(model.login, False)
        return root

    def _logged_in(self, vm: Any, logged_in: bool) -> None:
        self.nav.disabled = not logged_in
        self.nav.opacity = 1 if logged_in else 0
        self.nav.height = dp(56) if logged_in else 0
        self.nav_buttons["users"].disabled = not vm.is_admin
        self.nav_buttons["users"].opacity = 1 if vm.is_admin else 0
        self.who.text = f"{vm.username} ({vm.role})" if logged_in else ""
        self.show("dashboard" if logged_in else "login")

    def show(self, name: str) -> None:
        """Show a screen; asking for the screen already shown loads it again (after an error, the
        operator's click on its button is the retry)."""
        if self.manager.current == name:
            reload = getattr(self.screens[name], "reload", None)
            if reload is not None:
                reload()
            return
        self.manager.current = name

    def open_detail(self, submission_id: int) -> None:
        assert self.model is not None
        self.model.detail.spawn(self.model.detail.load(submission_id))
        self.show("detail")

    def on_stop(self) -> None:
        if self.model is not None:
            self.model.dashboard.stop_auto_refresh()
