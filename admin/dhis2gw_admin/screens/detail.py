"""The detail view of one submission: summary, payloads, response, conflicts, errors, timeline."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kivy.metrics import dp
from kivymd.uix.boxlayout import MDBoxLayout
from kivymd.uix.card import MDCard
from kivymd.uix.gridlayout import MDGridLayout
from kivymd.uix.screen import MDScreen
from kivymd.uix.scrollview import MDScrollView

from dhis2gw_admin.screens.widgets import ERROR_COLOR, STATUS_COLORS, button, dialog, hbox, label, shows_text, vbox
from dhis2gw_admin.viewmodels.detail import DetailVM

MAX_SHOWN = 20000  # characters of a payload drawn on screen (copy takes everything)
SECTIONS = (("error_reports", "Errors reported by DHIS2"), ("conflicts", "DHIS2 conflicts"),
            ("attempts", "Attempts"), ("events", "Events timeline"), ("payload", "Submitted payload"),
            ("dhis2_payload", "DHIS2 payload"), ("response", "DHIS2 response"))


class DetailScreen(MDScreen):
    """Binds to ``DetailVM``; ``back()`` returns to the logs."""

    def __init__(self, vm: DetailVM, back: Callable[[], None], **kw: Any) -> None:
        super().__init__(name="detail", **kw)
        self.vm = vm
        self.back = back
        self.title = label("", bold=True, role="large")
        self.status = label("", bold=True, size_hint_x=None, width=dp(140))
        self.requeue_button = button("Requeue", lambda: vm.spawn(vm.requeue()))
        self.delete_button = button("Delete", self.confirm_delete, style="outlined")
        self.message = label("")
        self.error = label("", color=ERROR_COLOR)
        self.summary = MDGridLayout(cols=4, adaptive_height=True, spacing=dp(4))
        self.section_labels: dict[str, Any] = {}
        body = vbox(self.message, self.error, self.summary, padding=16, spacing=10)
        for key, title in SECTIONS:
            card = MDCard(orientation="vertical", padding=dp(12), spacing=dp(6), size_hint_y=None, style="outlined")
            card.bind(minimum_height=card.setter("height"))
            copy = button("Copy", lambda k=key: self.vm.copy(k), style="text", size_hint_x=None)
            card.add_widget(hbox(label(title, bold=True), copy, height=40))
            text = label("", mono=key in ("payload", "dhis2_payload", "response"))
            card.add_widget(text)
            self.section_labels[key] = text
            body.add_widget(card)
        scroll = MDScrollView()
        scroll.add_widget(body)
        root = MDBoxLayout(orientation="vertical", padding=dp(12), spacing=dp(6))
        root.add_widget(hbox(button("Back", back, style="text", size_hint_x=None), self.title, self.status,
                             self.requeue_button, self.delete_button))
        root.add_widget(scroll)
        self.add_widget(root)
        vm.bind(submission=self._show, status=self._status, error=shows_text(self.error),
                message=shows_text(self.message),
                deleted=lambda _v, d: d and self.back())

    def _status(self, _vm: Any, status: str) -> None:
        self.status.text = status.upper()
        self.status.theme_text_color = "Custom"
        self.status.text_color = STATUS_COLORS.get(status, (0.3, 0.3, 0.3, 1))
        self.requeue_button.disabled = not self.vm.can_requeue

    def _show(self, _vm: Any, submission: dict[str, Any]) -> None:
        if not submission:
            return
        self.title.text = f"Submission {submission['id']}"
        self._status(None, self.vm.status)
        self.summary.clear_widgets()
        for name, value in self.vm.summary:
            self.summary.add_widget(label(name, bold=True))
            self.summary.add_widget(label(str(value)))
        for key, widget in self.section_labels.items():
            text = self.vm.display_text(key)
            if key in ("conflicts", "error_reports", "attempts", "events"):
                text = "\n".join("• " + line for line in text.splitlines()) or "none"
            widget.text = text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN] + "\n… (copy to see everything)"

    def confirm_delete(self) -> None:
        self.confirm_dialog = dialog("Delete this submission?",
                                     f"Submission {self.vm.submission_id} and its events will be deleted for good.",
                                     [("Cancel", None), ("Delete", lambda: self.vm.spawn(self.vm.delete()))])
