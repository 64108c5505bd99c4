"""The dashboard: counts per status (24 h / 7 d), per-destination queue, breaker, pause/resume."""
from __future__ import annotations

from typing import Any

from kivy.metrics import dp
from kivymd.uix.card import MDCard
from kivymd.uix.gridlayout import MDGridLayout
from kivymd.uix.screen import MDScreen
from kivymd.uix.scrollview import MDScrollView

from dhis2gw_admin.screens.widgets import ERROR_COLOR, STATUS_COLORS, button, hbox, label, shows_text, vbox
from dhis2gw_admin.viewmodels.dashboard import STATUSES, DashboardVM


class DashboardScreen(MDScreen):
    """Binds to ``DashboardVM``; auto-refresh runs while the screen is shown."""

    def __init__(self, vm: DashboardVM, **kw: Any) -> None:
        super().__init__(name="dashboard", **kw)
        self.vm = vm
        self.counts_grid = MDGridLayout(cols=len(STATUSES) + 1, adaptive_height=True, spacing=dp(6))
        self.queue_box = vbox(spacing=6)
        self.status = label("")
        self.error = label("", color=ERROR_COLOR)
        self.gateway = label("")
        body = vbox(
            hbox(label("Dashboard", bold=True, role="large"), self.status,
                 button("Refresh", lambda: vm.spawn(vm.refresh()), style="outlined", size_hint_x=None)),
            self.gateway, self.error, label("Submissions per status", bold=True), self.counts_grid,
            label("Queues per destination", bold=True), self.queue_box, padding=16, spacing=12)
        scroll = MDScrollView()
        scroll.add_widget(body)
        self.add_widget(scroll)
        vm.bind(counts=self._counts, destinations=self._queues, error=shows_text(self.error),
                gateway_text=shows_text(self.gateway),
                updated_at=lambda _v, t: setattr(self.status, "text", f"updated {t}, refreshes every "
                                                                      f"{int(vm.interval)} s"))

    def on_enter(self, *args: Any) -> None:
        self.vm.message = ""
        self.vm.start_auto_refresh()

    def reload(self) -> None:
        """The Dashboard button while the dashboard is shown: refresh now."""
        self.vm.spawn(self.vm.refresh())

    def on_leave(self, *args: Any) -> None:
        self.vm.stop_auto_refresh()

    def _counts(self, _vm: Any, counts: dict[str, dict[str, int]]) -> None:
        grid = self.counts_grid
        grid.clear_widgets()
        grid.add_widget(label("", bold=True))
        for s in STATUSES:
            grid.add_widget(label(s, bold=True, color=STATUS_COLORS.get(s)))
        for window, title in (("24h", "last 24 h"), ("7d", "last 7 days")):
            grid.add_widget(label(title, bold=True))
            for s in STATUSES:
                grid.add_widget(label(str(counts.get(window, {}).get(s, 0))))

    def _queues(self, _vm: Any, destinations: list[dict[str, Any]]) -> None:
        self.queue_box.clear_widgets()
        if not self.vm.redis_ok:
            self.queue_box.add_widget(label("Redis is not answering: queue numbers are unknown.", color=ERROR_COLOR))
        for d in destinations:
            name = d["destination"]
            card = MDCard(orientation="vertical", padding=dp(12), spacing=dp(4), size_hint_y=None, style="outlined")
            card.bind(minimum_height=card.setter("height"))
            action = (button("Resume", lambda n=name: self.vm.spawn(self.vm.resume(n)), size_hint_x=None)
                      if d.get("paused") else
                      button("Pause", lambda n=name: self.vm.spawn(self.vm.pause(n)), style="outlined",
                             size_hint_x=None))
            action.disabled = bool(d.get("stale"))
            card.add_widget(hbox(label(d.get("title") or name, bold=True), label(
                d["paused_text"], color=ERROR_COLOR if d.get("paused") or d.get("stale") else None), action))
            card.add_widget(label("Queue: unknown" if d.get("stale") else
                                  f"Queue: {d['depth_text']}; waiting in database: {d.get('waiting_rows', 0)}"))
            card.add_widget(label(f"Oldest waiting: {d['oldest_text']}"))
            card.add_widget(label(f"Circuit breaker: {d['breaker_text']}",
                                  color=ERROR_COLOR if d.get("stale") or "open" in d["breaker_text"] else None))
            self.queue_box.add_widget(card)
