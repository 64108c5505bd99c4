"""The registry of delivery-outcome observers.

The composition root creates one :class:`OutcomeObservers` and hands it to the dispatcher (every
worker tells it about each outcome it records) and to whatever wants to hear: the metrics, and
plugins through ``PluginContext.outcomes``. Nothing wraps a worker's methods after it is built.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.logger import Logger

from dhis2gw.dhis2.outcome import Outcome

#: ``observer(destination, row, outcome, event)``; ``event`` is ``"recorded"`` today.
OutcomeObserver = Callable[[str, dict[str, Any], Outcome, str], None]


class OutcomeObservers:
    """Callables told about every recorded delivery outcome, in the order they were added.

    An observer runs in the worker right after the outcome is committed: it must return quickly
    (start any I/O as a Deferred of its own). One that raises is logged and the others still run;
    delivery never notices.
    """

    log = Logger(namespace="dhis2gw.delivery")

    def __init__(self) -> None:
        self._observers: list[OutcomeObserver] = []

    def add(self, observer: OutcomeObserver) -> None:
        """Tell ``observer`` about every outcome recorded from now on."""
        self._observers.append(observer)

    def __len__(self) -> int:
        return len(self._observers)

    def __call__(self, destination: str, row: dict[str, Any], outcome: Outcome, event: str) -> None:
        for observer in list(self._observers):
            try:
                observer(destination, row, outcome, event)
            except Exception:  # noqa: BLE001 - an observer must never break delivery
                self.log.failure("outcome observer {observer!r} failed", observer=observer)
