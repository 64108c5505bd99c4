"""The app's object graph without widgets: one client, one API, one view model per screen.

Built once by the app (on Kivy's Twisted reactor) and by the tests (on the default reactor).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dhis2gw_admin.api import GatewayApi
from dhis2gw_admin.client import GatewayClient
from dhis2gw_admin.settings import SettingsStore
from dhis2gw_admin.viewmodels import DashboardVM, DetailVM, LoginVM, LogsVM, MappingsVM, UsersVM
from dhis2gw_admin.viewmodels.report import ReportVM


class AdminModel:
    """Everything the screens bind to.

    :param reactor: Twisted reactor (network and timers).
    :param server_url: the initial gateway address (the remembered one wins unless ``force_server``).
    :param settings: where the last server URL is remembered (None: nowhere).
    :param clipboard: ``callable(text)`` used by the detail view's copy buttons.
    """

    def __init__(self, reactor: Any, server_url: str | None = None, settings: SettingsStore | None = None,
                 clipboard: Callable[[str], None] | None = None, dashboard_interval: float = 15.0,
                 force_server: bool = False) -> None:
        self.reactor = reactor
        self.client = GatewayClient(reactor, server_url or "http://127.0.0.1:9090")
        self.api = GatewayApi(self.client)
        self.login = LoginVM(self.client, settings)
        if server_url and (force_server or not (settings and settings.load().get("server_url"))):
            self.login.server_url = self.client.base_url
        self.dashboard = DashboardVM(self.api, reactor, interval=dashboard_interval)
        self.logs = LogsVM(self.api, reactor)
        self.detail = DetailVM(self.api, clipboard)
        self.mappings = MappingsVM(self.api, reactor)
        self.report = ReportVM(self.api)
        self.users = UsersVM(self.api)
        self.login.bind(is_admin=lambda _vm, value: setattr(self.users, "allowed", bool(value)),
                        logged_in=self._logged_in_changed)

    def _logged_in_changed(self, _vm: Any, logged_in: bool) -> None:
        if not logged_in:
            self.dashboard.stop_auto_refresh()

    async def close(self) -> None:
        self.dashboard.stop_auto_refresh()
        await self.client.close()
