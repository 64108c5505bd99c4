"""Observable fields for view models, without Kivy.

A view model declares ``count = Field(0)``; assigning ``vm.count = 3`` calls every callback
bound with ``vm.bind(count=callback)`` as ``callback(vm, 3)`` when the value changed. The
screens bind widget updates to these; tests read the attributes directly.
"""
from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

Callback = Callable[[Any, Any], None]


class Field:
    """A notifying attribute (mutable defaults are copied per instance)."""

    def __init__(self, default: Any = None) -> None:
        self.default = default
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: type) -> Any:
        if obj is None:
            return self
        values = obj.__dict__.setdefault("_values", {})
        if self.name not in values:
            values[self.name] = copy.deepcopy(self.default)
        return values[self.name]

    def __set__(self, obj: Any, value: Any) -> None:
        values = obj.__dict__.setdefault("_values", {})
        old = values.get(self.name, self.default)
        values[self.name] = value
        if old is not value and old != value or isinstance(value, (list, dict)):
            obj.notify(self.name, value)


class Observable:
    """Base class: ``bind(name=callback)``, ``unbind``, ``notify``."""

    def bind(self, **callbacks: Callback) -> None:
        observers = self.__dict__.setdefault("_observers", {})
        for name, cb in callbacks.items():
            if not isinstance(getattr(type(self), name, None), Field):
                raise AttributeError(f"{type(self).__name__} has no observable field {name!r}")
            observers.setdefault(name, []).append(cb)

    def unbind(self, **callbacks: Callback) -> None:
        observers = self.__dict__.get("_observers", {})
        for name, cb in callbacks.items():
            if cb in observers.get(name, []):
                observers[name].remove(cb)

    def notify(self, name: str, value: Any) -> None:
        for cb in list(self.__dict__.get("_observers", {}).get(name, [])):
            cb(self, value)
