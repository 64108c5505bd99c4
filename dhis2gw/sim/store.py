"""What the simulated DHIS2 received and stored, for tests to assert on.

Everything is in memory and keyed the way DHIS2 identifies it: data values by their natural
key ``(dataElement, period, orgUnit, categoryOptionCombo, attributeOptionCombo)``, tracker
objects by UID. ``write_counts`` counts every write (create, update, delete) per key so tests
can prove "written exactly once".
"""
from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

DataValueKey = tuple[str, str, str, str, str]
#: The values one import writes, kept apart until it commits (then merged into ``Store.data_values``).
Overlay = dict[DataValueKey, "DataValueRecord"]


@dataclass
class RequestRecord:
    """One HTTP request as the simulator saw it (credentials removed)."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body_size: int
    time: float
    body: bytes = field(default=b"", repr=False)


@dataclass
class DataValueRecord:
    """A stored data value (soft-deleted values keep ``deleted=True``)."""

    dataElement: str
    period: str
    orgUnit: str
    categoryOptionCombo: str
    attributeOptionCombo: str
    value: str | None
    comment: str | None = None
    followup: bool = False
    storedBy: str = "admin"
    deleted: bool = False
    created: float = 0.0
    lastUpdated: float = 0.0

    @property
    def key(self) -> DataValueKey:
        """The natural key."""
        return (self.dataElement, self.period, self.orgUnit, self.categoryOptionCombo, self.attributeOptionCombo)


@dataclass
class Store:
    """All state written by clients; reset with :meth:`clear`."""

    data_values: dict[DataValueKey, DataValueRecord] = field(default_factory=dict)
    completions: dict[tuple[str, str, str, str], dict[str, Any]] = field(default_factory=dict)
    tracked_entities: dict[str, dict[str, Any]] = field(default_factory=dict)
    enrollments: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    relationships: dict[str, dict[str, Any]] = field(default_factory=dict)
    org_units: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Writes per data value key, per object UID, per (group, member) pair.
    write_counts: Counter[DataValueKey | str | tuple[str, str]] = field(default_factory=Counter)
    requests: list[RequestRecord] = field(default_factory=list)
    keep_request_bodies: bool = True

    def clear(self) -> None:
        """Forget everything (metadata is not part of the store)."""
        for name in ("data_values", "completions", "tracked_entities", "enrollments", "events",
                     "relationships", "org_units", "requests"):
            getattr(self, name).clear()
        self.write_counts.clear()

    def live_values(self) -> dict[DataValueKey, DataValueRecord]:
        """Data values that are not soft-deleted."""
        return {k: v for k, v in self.data_values.items() if not v.deleted}

    def tracker_collection(self, tracker_type: str) -> dict[str, dict[str, Any]]:
        """The dict for ``TRACKED_ENTITY`` / ``ENROLLMENT`` / ``EVENT`` / ``RELATIONSHIP``."""
        return {"TRACKED_ENTITY": self.tracked_entities, "ENROLLMENT": self.enrollments,
                "EVENT": self.events, "RELATIONSHIP": self.relationships}[tracker_type]

    def requests_to(self, fragment: str, method: str | None = None) -> list[RequestRecord]:
        """Recorded requests whose path contains *fragment* (and with *method*, if given)."""
        return [r for r in self.requests if fragment in r.path and (method is None or r.method == method)]

    def to_json(self, max_requests: int = 500) -> dict[str, Any]:
        """A JSON-able snapshot for ``GET /__sim/store``."""
        return {
            "dataValues": [asdict(v) for v in self.data_values.values()],
            "completions": list(self.completions.values()),
            "trackedEntities": list(self.tracked_entities.values()),
            "enrollments": list(self.enrollments.values()),
            "events": list(self.events.values()),
            "relationships": list(self.relationships.values()),
            "organisationUnits": list(self.org_units.values()),
            "writeCounts": [{"key": list(k) if isinstance(k, tuple) else k, "count": c}
                            for k, c in self.write_counts.items()],
            "requests": [{k: v for k, v in asdict(r).items() if k != "body"}
                         for r in self.requests[-max_requests:]],
        }
