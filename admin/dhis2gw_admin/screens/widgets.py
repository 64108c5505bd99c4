"""Small KivyMD widget builders shared by the screens (no logic, no HTTP)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kivy.metrics import dp
from kivy.uix.behaviors import ButtonBehavior
from kivy.uix.widget import Widget
from kivymd.uix.boxlayout import MDBoxLayout
from kivymd.uix.button import MDButton, MDButtonText
from kivymd.uix.dialog import (
    MDDialog,
    MDDialogButtonContainer,
    MDDialogContentContainer,
    MDDialogHeadlineText,
    MDDialogSupportingText,
)
from kivymd.uix.label import MDLabel
from kivymd.uix.textfield import MDTextField, MDTextFieldHintText

MONO = "RobotoMono-Regular"
STATUS_COLORS = {"delivered": (0.18, 0.55, 0.24, 1), "failed": (0.75, 0.15, 0.15, 1),
                 "rejected": (0.75, 0.15, 0.15, 1), "partial": (0.85, 0.5, 0.0, 1),
                 "retrying": (0.85, 0.5, 0.0, 1), "queued": (0.2, 0.4, 0.8, 1), "processing": (0.2, 0.4, 0.8, 1)}
ERROR_COLOR = (0.75, 0.1, 0.1, 1)


def label(text: str = "", bold: bool = False, mono: bool = False, color: Any = None, size_hint_x: Any = 1,
          shorten: bool = False, role: str = "medium", **kw: Any) -> MDLabel:
    """A label that grows with its text (or stays one line with ``shorten``)."""
    lbl = MDLabel(text=text, bold=bold, size_hint_x=size_hint_x, font_style="Body", role=role, **kw)
    if mono:
        lbl.font_name = MONO
    if color is not None:
        lbl.theme_text_color = "Custom"
        lbl.text_color = color
    if shorten:
        lbl.shorten = True
        lbl.shorten_from = "right"
        lbl.size_hint_y = None
        lbl.height = dp(28)
        lbl.bind(width=lambda w, v: setattr(w, "text_size", (v, None)))
    else:
        lbl.adaptive_height = True
        lbl.height = lbl.texture_size[1] if text else 0  # an empty label must not keep Kivy's 100 px default
    return lbl


def button(text: str, on_release: Callable[..., Any], style: str = "filled", **kw: Any) -> MDButton:
    btn = MDButton(MDButtonText(text=text), style=style, **kw)
    btn.bind(on_release=lambda *_: on_release())
    return btn


def field(hint: str, text: str = "", password: bool = False, width: float | None = None, **kw: Any) -> MDTextField:
    tf = MDTextField(MDTextFieldHintText(text=hint), mode="outlined", text=text, password=password,
                     multiline=False, **kw)
    if width is not None:
        tf.size_hint_x = None
        tf.width = dp(width)
    return tf


def hbox(*children: Widget, height: float = 56, spacing: float = 8, **kw: Any) -> MDBoxLayout:
    box = MDBoxLayout(orientation="horizontal", size_hint_y=None, height=dp(height), spacing=dp(spacing), **kw)
    for child in children:
        box.add_widget(child)
    return box


def vbox(*children: Widget, spacing: float = 8, padding: float = 0, **kw: Any) -> MDBoxLayout:
    box = MDBoxLayout(orientation="vertical", adaptive_height=True, spacing=dp(spacing), padding=dp(padding), **kw)
    for child in children:
        box.add_widget(child)
    return box


class ClickableRow(ButtonBehavior, MDBoxLayout):
    """A table row that reacts to a click."""


def shows_text(widget: Widget) -> Callable[[Any, Any], None]:
    """An observer for ``vm.bind``: the field's new value becomes ``widget``'s text."""
    return lambda _vm, text: setattr(widget, "text", text)


class LoadsOnEnter:
    """Mixed into a screen over a view model with ``load()`` (before ``MDScreen``): each visit
    starts without the banner of the last one and loads again; ``reload`` is the menu's refresh."""

    vm: Any

    def on_enter(self, *args: Any) -> None:
        self.vm.message = ""  # a banner belongs to the visit it was made in
        self.reload()

    def reload(self) -> None:
        self.vm.spawn(self.vm.load())


def dialog(title: str, text: str, actions: list[tuple[str, Callable[[], Any] | None]],
           content: Widget | None = None) -> MDDialog:
    """Open a dialog; each action is (label, callback or None to just close)."""
    buttons = MDDialogButtonContainer(Widget(), spacing=dp(8))
    dlg = MDDialog(MDDialogHeadlineText(text=title), MDDialogSupportingText(text=text))
    if content is not None:
        dlg.add_widget(MDDialogContentContainer(content, orientation="vertical"))

    def make(cb: Callable[[], Any] | None) -> Callable[[], None]:
        def run() -> None:
            dlg.dismiss()
            if cb is not None:
                cb()
        return run

    for i, (caption, cb) in enumerate(actions):
        buttons.add_widget(button(caption, make(cb), style="filled" if i == len(actions) - 1 else "text"))
    dlg.add_widget(buttons)
    dlg.open()
    return dlg
