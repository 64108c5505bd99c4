"""The report screen: facilities × periods of a data set, each cell coloured by status."""
from __future__ import annotations

from typing import Any

from kivy.metrics import dp
from kivymd.uix.boxlayout import MDBoxLayout
from kivymd.uix.screen import MDScreen
from kivymd.uix.scrollview import MDScrollView

from dhis2gw_admin.screens.widgets import ERROR_COLOR, STATUS_COLORS, button, field, hbox, label, shows_text, vbox
from dhis2gw_admin.viewmodels.report import ReportVM

MISSING_COLOR = (0.55, 0.55, 0.55, 1)
NAME_WEIGHT = 0.28


class ReportScreen(MDScreen):
    """Binds to ``ReportVM``."""

    def __init__(self, vm: ReportVM, **kw: Any) -> None:
        super().__init__(name="report", **kw)
        self.vm = vm
        self.data_set = field("Data set UID", text=vm.data_set, width=160)
        self.periods = field("Periods (e.g. 202401,202402)", width=330)
        self.parent_unit = field("Under org unit (UID)", width=190)
        self.apply_button = button("Show", self.apply, size_hint_x=None)
        self.problems_button = button("Only missing / rejected", self.toggle_problems, style="outlined",
                                      size_hint_x=None)
        self.error = label("", color=ERROR_COLOR)
        self.totals = label("")
        self.header = hbox(height=36)
        self.rows = vbox(spacing=2)
        self.table = MDScrollView()
        self.table.add_widget(self.rows)
        self.page_label = label("", size_hint_x=None, width=dp(360))
        self.footer = hbox(button("Previous", vm.previous_page, style="text", size_hint_x=None), self.page_label,
                           button("Next", vm.next_page, style="text", size_hint_x=None), height=48)
        root = MDBoxLayout(orientation="vertical", padding=dp(12), spacing=dp(6))
        for w in (hbox(self.data_set, self.periods, self.parent_unit, self.apply_button, self.problems_button),
                  self.error, self.totals, self.header, self.table, self.footer):
            root.add_widget(w)
        self.add_widget(root)
        vm.bind(rows=self._show_rows, error=shows_text(self.error),
                totals_text=shows_text(self.totals),
                page_text=shows_text(self.page_label),
                problems_only=lambda _v, on: setattr(self.problems_button.children[0], "text",
                                                     "Show all facilities" if on else "Only missing / rejected"))

    def apply(self) -> None:
        self.vm.spawn(self.vm.load(data_set=self.data_set.text, periods_text=self.periods.text,
                                   parent=self.parent_unit.text))

    def toggle_problems(self) -> None:
        self.vm.set_problems_only(not self.vm.problems_only)

    def _show_rows(self, _vm: Any, rows: list[dict[str, Any]]) -> None:
        periods = list(self.vm.periods)
        weight = (1 - NAME_WEIGHT) / max(1, len(periods))
        self.header.clear_widgets()
        self.header.add_widget(label("Facility", bold=True, size_hint_x=NAME_WEIGHT, shorten=True))
        for p in periods:
            self.header.add_widget(label(p, bold=True, size_hint_x=weight, shorten=True))
        self.rows.clear_widgets()
        self.row_widgets = []
        for row in rows:
            line = hbox(height=30)
            line.add_widget(label(row["label"], size_hint_x=NAME_WEIGHT, shorten=True))
            for status in row["statuses"]:
                line.add_widget(label(status, size_hint_x=weight, shorten=True, bold=status != "missing",
                                      color=STATUS_COLORS.get(status, MISSING_COLOR)))
            self.rows.add_widget(line)
            self.row_widgets.append(line)
