"""The logs screen: filters, sortable paginated table, requeue/delete per row, bulk actions."""
from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from kivy.metrics import dp
from kivymd.uix.boxlayout import MDBoxLayout
from kivymd.uix.menu import MDDropdownMenu
from kivymd.uix.pickers import MDModalDatePicker
from kivymd.uix.progressindicator import MDLinearProgressIndicator
from kivymd.uix.screen import MDScreen
from kivymd.uix.scrollview import MDScrollView

from dhis2gw_admin.screens.widgets import (
    ERROR_COLOR,
    STATUS_COLORS,
    ClickableRow,
    LoadsOnEnter,
    button,
    dialog,
    field,
    hbox,
    label,
    shows_text,
    vbox,
)
from dhis2gw_admin.viewmodels.logs import STATUSES, LogsVM

# (sort key or None, title, width weight, the row's text): header and rows share these weights and
# the same spacing, so the cells line up; the action column is the same width on every row.
COLUMNS = (("id", "ID", 0.06, lambda i: str(i["id"])), ("created_at", "Created", 0.15, lambda i: i["created"]),
           (None, "Org unit", 0.17, lambda i: i.get("org_unit_text", "")),
           (None, "Period", 0.07, lambda i: i.get("period_text", "")),
           (None, "Submitter", 0.08, lambda i: i.get("submitter_text", "")),
           ("kind", "Kind", 0.07, lambda i: i.get("kind", "")),
           ("status", "Status", 0.08, lambda i: i["status"]),
           ("attempts", "Tries", 0.04, lambda i: str(i.get("attempts", 0))),
           (None, "Reason", 0.18, lambda i: i["error_snippet"]))
ACTION_WEIGHT = 0.1
ROW_SPACING = 8


class LogsScreen(LoadsOnEnter, MDScreen):
    """Binds to ``LogsVM``; ``open_detail(id)`` shows the detail screen."""

    def __init__(self, vm: LogsVM, open_detail: Callable[[int], None], **kw: Any) -> None:
        super().__init__(name="logs", **kw)
        self.vm = vm
        self.open_detail = open_detail
        self.status_button = button("Status: any", self._status_menu, style="outlined", size_hint_x=None)
        self.date_from = field("From (YYYY-MM-DD)", width=175)
        self.date_to = field("To (YYYY-MM-DD)", width=175)
        self.user = field("User", width=110)
        self.kind = field("Kind / endpoint", width=140)
        self.destination = field("Destination", width=120)
        self.org_unit = field("Org unit (UID or code)", width=170)
        self.period = field("Period", width=90)
        self.text = field("Search id, org unit, period, error…")
        self.text.bind(on_text_validate=lambda *_: self.apply())
        self.pick_from = button("Pick", lambda: self._pick(self.date_from), style="text", size_hint_x=None)
        self.pick_to = button("Pick", lambda: self._pick(self.date_to), style="text", size_hint_x=None)
        self.apply_button = button("Apply", self.apply, size_hint_x=None)
        self.clear_button = button("Clear", self.clear, style="text", size_hint_x=None)
        self.requeue_all_button = button("Requeue matching…", self.confirm_requeue_matching, style="outlined",
                                         size_hint_x=None)
        self.purge_button = button("Purge…", self.ask_purge, style="outlined", size_hint_x=None)
        self.progress = MDLinearProgressIndicator(value=0, size_hint_y=None, height=dp(4), opacity=0)
        self.progress_text = label("")
        self.message = label("")
        self.error = label("", color=ERROR_COLOR)
        self.header = hbox(height=40, spacing=ROW_SPACING)
        self.header_labels: dict[str, Any] = {}
        for key, title, weight, _text in COLUMNS:
            cell = ClickableRow(size_hint_x=weight)
            caption = label(title, bold=True, shorten=True)
            cell.add_widget(caption)
            if key:
                cell.bind(on_release=lambda _w, k=key: self._sort(k))
                self.header_labels[key] = (caption, title)
            self.header.add_widget(cell)
        self.header.add_widget(label("", size_hint_x=ACTION_WEIGHT))
        self._sort_marks()
        self.rows = vbox(spacing=2)
        self.page_label = label("", size_hint_x=None, width=dp(320))
        self.prev_button = button("Previous", lambda: vm.spawn(vm.previous_page()), style="text", size_hint_x=None)
        self.next_button = button("Next", lambda: vm.spawn(vm.next_page()), style="text", size_hint_x=None)
        self.table = MDScrollView()
        self.table.add_widget(self.rows)
        self.footer = hbox(self.prev_button, self.page_label, self.next_button, height=48)
        top = vbox(
            hbox(self.status_button, self.date_from, self.pick_from, self.date_to, self.pick_to, self.user,
                 self.kind, self.destination),
            hbox(self.org_unit, self.period, self.text, self.apply_button, self.clear_button, self.requeue_all_button,
                 self.purge_button),
            self.progress, self.progress_text, self.error, self.message, self.header, spacing=6)
        root = MDBoxLayout(orientation="vertical", padding=dp(12), spacing=dp(6))
        for w in (top, self.table, self.footer):
            root.add_widget(w)
        self.add_widget(root)
        vm.bind(items=self._show_rows, error=shows_text(self.error),
                message=shows_text(self.message), progress=self._progress,
                sort=self._sort_marks, descending=self._sort_marks,
                progress_text=shows_text(self.progress_text),
                statuses=lambda _v, s: setattr(self.status_button.children[0], "text",
                                               "Status: " + (", ".join(s) or "any")))

    # --- filters -----------------------------------------------------------------------------------
    def _status_menu(self) -> None:
        def choose(status: str) -> None:
            menu.dismiss()
            self.vm.statuses = [] if status == "any" else [status]

        items = [{"text": s, "on_release": (lambda s=s: choose(s))} for s in ("any",) + STATUSES]
        menu = MDDropdownMenu(caller=self.status_button, items=items)
        menu.open()

    def _pick(self, target: Any) -> None:
        picker = MDModalDatePicker()

        def ok(instance: Any) -> None:
            chosen = instance.get_date()
            if chosen and isinstance(chosen[0], date):
                target.text = chosen[0].isoformat()
            instance.dismiss()

        picker.bind(on_ok=ok, on_cancel=lambda inst: inst.dismiss())
        picker.open()

    def _filters(self) -> dict[str, Any]:
        kind = self.kind.text.strip()
        return {"date_from": self.date_from.text, "date_to": self.date_to.text, "user": self.user.text,
                "kind": "" if kind.startswith("/") else kind, "endpoint": kind if kind.startswith("/") else "",
                "destination": self.destination.text, "org_unit": self.org_unit.text, "period": self.period.text,
                "text": self.text.text}

    def apply(self) -> None:
        self.vm.spawn(self.vm.apply(**self._filters()))

    def clear(self) -> None:
        for tf in (self.date_from, self.date_to, self.user, self.kind, self.destination, self.org_unit, self.period,
                   self.text):
            tf.text = ""
        self.vm.clear_filters()
        self.vm.spawn(self.vm.load())

    def _sort(self, column: str) -> None:
        self.vm.spawn(self.vm.sort_by(column))

    def _sort_marks(self, *_: Any) -> None:
        for key, (caption, title) in self.header_labels.items():
            mark = (" (newest first)" if key.endswith("_at") else " (desc)") if self.vm.descending else " (asc)"
            caption.text = title + (mark if key == self.vm.sort else "")

    # --- table ---------------------------------------------------------------------------------------
    def _show_rows(self, _vm: Any, items: list[dict[str, Any]]) -> None:
        self.rows.clear_widgets()
        self.row_widgets: dict[int, ClickableRow] = {}
        for item in items:
            row = ClickableRow(orientation="horizontal", size_hint_y=None, height=dp(36), spacing=dp(ROW_SPACING))
            row.bind(on_release=lambda _w, sid=item["id"]: self.open_detail(sid))
            for key, _title, weight, text in COLUMNS:
                if key == "status":
                    row.add_widget(label(text(item), size_hint_x=weight, shorten=True, bold=True,
                                         color=STATUS_COLORS.get(item["status"])))
                else:
                    row.add_widget(label(text(item), size_hint_x=weight, shorten=True))
            # The action cell has the header's width whether or not it holds a button.
            action = MDBoxLayout(size_hint_x=ACTION_WEIGHT)
            if item["requeueable"]:
                row.requeue_button = button("Requeue", lambda sid=item["id"]: self.vm.spawn(self.vm.requeue_one(sid)),
                                            style="text", size_hint_x=1)
                action.add_widget(row.requeue_button)
            row.add_widget(action)
            self.rows.add_widget(row)
            self.row_widgets[item["id"]] = row
        self.page_label.text = self.vm.page_text

    def _progress(self, _vm: Any, value: float) -> None:
        self.progress.value = value * 100
        self.progress.opacity = 1 if 0 < value < 1 or self.vm.progress_text else 0

    # --- bulk actions ---------------------------------------------------------------------------------
    def confirm_requeue_matching(self) -> None:
        async def ask() -> None:
            count = await self.vm.prepare_requeue_matching()
            if count is None:
                return
            if count == 0:
                self.vm.message = "No failed, rejected or partial submission matches the filter."
                return
            self.confirm_dialog = dialog(
                "Requeue matching submissions?",
                f"{count} submission(s) matching the current filter (failed, rejected or partial) will be "
                "queued again and sent to DHIS2.",
                [("Cancel", None), (f"Requeue {count}", lambda: self.vm.spawn(self.vm.requeue_matching()))])

        self.vm.spawn(ask())

    def ask_purge(self) -> None:
        before = field("Delete final submissions created before (YYYY-MM-DD)")

        def check() -> None:
            async def run() -> None:
                count = await self.vm.prepare_purge(before.text.strip())
                if count is None:
                    return
                self.confirm_dialog = dialog(
                    "Purge old submissions?",
                    f"{count} delivered, partial, rejected or failed submission(s) created before "
                    f"{before.text.strip()} will be deleted for good. Queued ones are never touched.",
                    [("Cancel", None), (f"Delete {count}", lambda: self.vm.spawn(self.vm.purge(before.text.strip())))])

            self.vm.spawn(run())

        self.purge_dialog = dialog("Purge by date", "First the gateway counts what would be deleted.",
                                   [("Cancel", None), ("Count", check)], content=before)
