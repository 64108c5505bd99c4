"""Registries of delivery events: outcomes, lease expiries, reconciler passes.

The composition root creates one :class:`DeliveryEvents` and hands it to the dispatcher (every
worker tells ``outcomes`` about each outcome it records; the reaper and the reconciler tell
theirs) and to whatever wants to hear: the metrics, and plugins through
``PluginContext.outcomes``. Nothing wraps a worker's or the dispatcher's methods after they are built.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from twisted.logger import Logger

from dhis2gw.dhis2.outcome import Outcome

#: ``observer(destination, row, outcome, event)``; ``event`` is ``"recorded"`` today.
OutcomeObserver = Callable[[str, dict[str, Any], Outcome, str], None]


F = TypeVar("F", bound=Callable[..., None])


class Observers(Generic[F]):
    """Callables told about one kind of event, in the order they were added.

    An observer must return quickly (start any I/O as a Deferred of its own). One that raises is
    logged and the others still run; whoever emits the event never notices.
    """

    log = Logger(namespace="dhis2gw.delivery")

    def __init__(self) -> None:
        self._observers: list[F] = []

    def add(self, observer: F) -> None:
        """Tell ``observer`` about every event from now on."""
        self._observers.append(observer)

    def __len__(self) -> int:
        return len(self._observers)

    def __call__(self, *args: Any) -> None:
        for observer in list(self._observers):
            try:
                observer(*args)
            except Exception:  # noqa: BLE001 - an observer must never break delivery
                self.log.failure("observer {observer!r} failed", observer=observer)


class OutcomeObservers(Observers[OutcomeObserver]):
    """Callables told about every recorded delivery outcome, in the order they were added.

    An observer runs in the worker right after the outcome is committed: it must return quickly
    (start any I/O as a Deferred of its own). One that raises is logged and the others still run;
    delivery never notices.
    """


@dataclass
class DeliveryEvents:
    """What the dispatcher announces: each recorded outcome ``(destination, row, outcome, event)``,
    the ``(destination, id)`` pairs whose lease the reaper recovered, and each reconciler report."""

    outcomes: OutcomeObservers = field(default_factory=OutcomeObservers)
    leases_expired: Observers[Callable[[list[tuple[str, int]]], None]] = field(default_factory=Observers)
    reconciled: Observers[Callable[[Any], None]] = field(default_factory=Observers)
