"""The mappings screen: filters, list, import (file chooser, progress, row errors), export, template."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from kivy.metrics import dp
from kivymd.uix.boxlayout import MDBoxLayout
from kivymd.uix.filemanager import MDFileManager
from kivymd.uix.progressindicator import MDLinearProgressIndicator
from kivymd.uix.screen import MDScreen
from kivymd.uix.scrollview import MDScrollView
from kivymd.uix.selectioncontrol import MDCheckbox

from dhis2gw_admin.screens.widgets import ERROR_COLOR, LoadsOnEnter, button, field, hbox, label, shows_text, vbox
from dhis2gw_admin.viewmodels.mappings import MappingsVM

SHOWN = (("code", 0.14), ("what", 0.05), ("name", 0.18), ("dataset", 0.13), ("dataelement", 0.13),
         ("category_option_combo", 0.13), ("source_name", 0.12), ("destination_orgunit", 0.12))


def downloads_dir() -> Path:
    d = Path.home() / "Downloads"
    return d if d.is_dir() else Path.home()


class MappingsScreen(LoadsOnEnter, MDScreen):
    """Binds to ``MappingsVM``."""

    def __init__(self, vm: MappingsVM, **kw: Any) -> None:
        super().__init__(name="mappings", **kw)
        self.vm = vm
        self.filters = {name: field(hint, width=w) for name, hint, w in (
            ("code", "Code", 110), ("dataset", "Data set", 130), ("dataelement", "Data element", 130),
            ("source_name", "Source", 110), ("instance_name", "Instance", 110), ("what", "What (de/ou/co)", 120))}
        self.q = field("Search")
        self.partial = MDCheckbox(size_hint=(None, None), size=(dp(40), dp(40)))
        self.progress = MDLinearProgressIndicator(value=0, size_hint_y=None, height=dp(4), opacity=0)
        self.progress_text = label("")
        self.message = label("")
        self.error = label("", color=ERROR_COLOR)
        self.import_errors = label("", color=ERROR_COLOR)
        self.rows = vbox(spacing=2)
        self.page_label = label("")
        header = hbox(height=32)
        for name, weight in SHOWN:
            header.add_widget(label(name, bold=True, size_hint_x=weight, shorten=True))
        top = vbox(
            hbox(*self.filters.values(), self.q, button("Apply", self.apply, size_hint_x=None)),
            hbox(button("Import CSV/XLSX…", self.choose_file, size_hint_x=None), self.partial,
                 label("keep valid rows", size_hint_x=None, width=dp(120)),
                 button("Export CSV", lambda: vm.spawn(vm.export("csv", downloads_dir())), style="outlined",
                        size_hint_x=None),
                 button("Export XLSX", lambda: vm.spawn(vm.export("xlsx", downloads_dir())), style="outlined",
                        size_hint_x=None),
                 button("Template", lambda: vm.spawn(vm.download_template(downloads_dir())), style="text",
                        size_hint_x=None)),
            self.progress, self.progress_text, self.message, self.error, self.import_errors, header, spacing=6)
        scroll = MDScrollView()
        scroll.add_widget(self.rows)
        root = MDBoxLayout(orientation="vertical", padding=dp(12), spacing=dp(6))
        for w in (top, scroll, hbox(button("Previous", lambda: vm.spawn(vm.go_to_page(vm.page - 1)), style="text",
                                           size_hint_x=None), self.page_label,
                                    button("Next", lambda: vm.spawn(vm.go_to_page(vm.page + 1)), style="text",
                                           size_hint_x=None), height=48)):
            root.add_widget(w)
        self.add_widget(root)
        vm.bind(items=self._rows, error=shows_text(self.error),
                message=shows_text(self.message),
                progress=lambda _v, p: (setattr(self.progress, "value", p * 100),
                                        setattr(self.progress, "opacity", 1)),
                progress_text=shows_text(self.progress_text),
                import_errors=lambda _v, lines: setattr(self.import_errors, "text", "\n".join(lines[:50])))
        self.file_manager = MDFileManager(exit_manager=self._close_chooser, select_path=self._chosen,
                                          ext=[".csv", ".xlsx"])

    def apply(self) -> None:
        values = {k: tf.text for k, tf in self.filters.items()}
        values["q"] = self.q.text
        self.vm.spawn(self.vm.apply(**values))

    def choose_file(self) -> None:
        self.file_manager.show(str(downloads_dir()))

    def _close_chooser(self, *args: Any) -> None:
        self.file_manager.close()

    def _chosen(self, path: str) -> None:
        self.file_manager.close()
        self.import_file(path)

    def import_file(self, path: str) -> None:
        self.vm.spawn(self.vm.import_file(path, partial=self.partial.active))

    def _rows(self, _vm: Any, items: list[dict[str, Any]]) -> None:
        self.rows.clear_widgets()
        for m in items:
            row = hbox(height=30)
            for name, weight in SHOWN:
                row.add_widget(label(str(m.get(name, "")), size_hint_x=weight, shorten=True))
            self.rows.add_widget(row)
        self.page_label.text = f"Page {self.vm.page} of {max(self.vm.pages, 1)} — {self.vm.total} mapping(s)"
