"""The DHIS2 metadata cache: what pre-validation checks aggregate values against.

Per destination: data sets (period type, org-unit assignments, attribute option combos and,
per data element, the COCs valid in that data set — a data-set-element category combo
overrides the element's own), aggregate data elements with value types, every category option
combo, and org units with their paths. Refreshed by the cron job ``metadata_refresh``
(dhis2gw.wiring.features), at start when the persisted snapshot is missing or stale, on demand
(``POST /metadata/refresh``) and, when ``interval`` is given, by a loop of its own on the injected
clock; persisted in ``metadata_cache`` so a restart
does not need DHIS2 up. Other processes learn of a refresh through a :class:`SharedVersion`
and reload from PostgreSQL. A snapshot older than ``max_age`` is *stale*: pre-validation then
accepts without checking and says so.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from twisted.application import service
from twisted.internet import defer, task
from twisted.logger import Logger

from dhis2gw.dhis2.metadata import (
    DATA_SET_FIELDS,
    DataElementInSet,
    DataSetStructure,
    fetch_category_option_combos,
    iterate_organisation_units,
    parse_data_set,
)
from dhis2gw.storage.metadata_cache import MetadataCacheStore

DATA_ELEMENT_FIELDS = "id,code,valueType,zeroIsSignificant,categoryCombo[id]"


@dataclass
class MetadataSnapshot:
    """One destination's metadata at ``fetched_at`` (epoch seconds)."""

    destination: str
    fetched_at: float
    data_sets: dict[str, DataSetStructure]
    data_elements: dict[str, dict[str, Any]]   # uid -> {code, valueType, zeroIsSignificant, categoryCombo}
    cocs: dict[str, str]                       # COC uid -> its category combo uid
    org_units: dict[str, str]                  # uid -> path
    default_coc: str | None
    dhis2_version: str | None = None        # /api/system/info ``version`` when the snapshot was taken

    def counts(self) -> dict[str, int]:
        """Sizes, for the status view."""
        return {"data_sets": len(self.data_sets), "data_elements": len(self.data_elements),
                "category_option_combos": len(self.cocs), "org_units": len(self.org_units)}

    # --- persistence --------------------------------------------------------------------
    def rows(self) -> list[tuple[str, str, Any]]:
        """``(kind, key, body)`` rows for metadata_cache."""
        out: list[tuple[str, str, Any]] = [
            ("snapshot", "info", {"fetched_at": self.fetched_at, "default_coc": self.default_coc,
                                  "dhis2_version": self.dhis2_version}),
            ("data_elements", "all", self.data_elements), ("category_option_combos", "all", self.cocs),
            ("org_units", "all", self.org_units)]
        for uid, ds in self.data_sets.items():
            out.append(("data_set", uid, _data_set_json(ds)))
        return out

    @classmethod
    def from_rows(cls, destination: str, rows: list[dict[str, Any]]) -> MetadataSnapshot | None:
        """Rebuild from metadata_cache rows (None when there is no complete snapshot)."""
        by_kind: dict[str, dict[str, Any]] = {}
        for row in rows:
            by_kind.setdefault(row["kind"], {})[row["key"]] = row["body"]
        info = by_kind.get("snapshot", {}).get("info")
        if not info:
            return None
        return cls(destination, float(info["fetched_at"]),
                   {uid: _data_set_from(body) for uid, body in by_kind.get("data_set", {}).items()},
                   by_kind.get("data_elements", {}).get("all") or {},
                   by_kind.get("category_option_combos", {}).get("all") or {},
                   by_kind.get("org_units", {}).get("all") or {}, info.get("default_coc"),
                   info.get("dhis2_version"))


def _data_set_json(ds: DataSetStructure) -> dict[str, Any]:
    return {"id": ds.id, "code": ds.code, "name": ds.name, "periodType": ds.period_type,
            "openFuturePeriods": ds.open_future_periods, "expiryDays": ds.expiry_days,
            "attributeOptionCombos": sorted(ds.attribute_option_combos),
            "dataInputPeriods": [list(p) for p in ds.input_periods],
            "organisationUnits": sorted(ds.organisation_units),
            "elements": {uid: {"code": e.code, "name": e.name, "valueType": e.value_type,
                               "zeroIsSignificant": e.zero_is_significant, "categoryCombo": e.category_combo,
                               "categoryOptionCombos": sorted(e.category_option_combos)}
                         for uid, e in ds.elements.items()}}


def _data_set_from(body: dict[str, Any]) -> DataSetStructure:
    return DataSetStructure(
        id=body["id"], code=body.get("code"), name=body.get("name"), period_type=body.get("periodType"),
        open_future_periods=int(body.get("openFuturePeriods") or 0), expiry_days=int(body.get("expiryDays") or 0),
        attribute_option_combos=frozenset(body.get("attributeOptionCombos") or ()),
        organisation_units=frozenset(body.get("organisationUnits") or ()),
        input_periods=tuple((p[0], p[1], p[2]) for p in body.get("dataInputPeriods") or ()),
        elements={uid: DataElementInSet(uid, e.get("code"), e.get("name"), e.get("valueType"),
                                        bool(e.get("zeroIsSignificant")), e.get("categoryCombo"),
                                        frozenset(e.get("categoryOptionCombos") or ()))
                  for uid, e in (body.get("elements") or {}).items()})


async def fetch_snapshot(client: Any, destination: str, now: float) -> MetadataSnapshot:
    """Read everything pre-validation needs from one DHIS2 (raises DHIS2ReadError)."""
    cocs = await fetch_category_option_combos(client)
    coc_combo = {c["id"]: (c.get("categoryCombo") or {}).get("id", "") for c in cocs if c.get("id")}
    by_combo: dict[str, list[str]] = {}
    for coc, combo in coc_combo.items():
        by_combo.setdefault(combo, []).append(coc)
    default_coc = next((c["id"] for c in cocs if c.get("name") == "default"), None)
    raw_sets = await client.get_json("dataSets", {"fields": DATA_SET_FIELDS, "paging": "false"})
    data_sets = {}
    for raw in (raw_sets or {}).get("dataSets") or []:
        if isinstance(raw, dict) and raw.get("id"):
            data_sets[raw["id"]] = parse_data_set(raw, by_combo)
    raw_elements = await client.get_json("dataElements", [("fields", DATA_ELEMENT_FIELDS),
                                                           ("filter", "domainType:eq:AGGREGATE"),
                                                           ("paging", "false")])
    elements = {}
    for de in (raw_elements or {}).get("dataElements") or []:
        if isinstance(de, dict) and de.get("id"):
            elements[de["id"]] = {"code": de.get("code"), "valueType": de.get("valueType"),
                                  "zeroIsSignificant": bool(de.get("zeroIsSignificant")),
                                  "categoryCombo": (de.get("categoryCombo") or {}).get("id")}
    org_units: dict[str, str] = {}
    async for page in iterate_organisation_units(client, fields="id,path", page_size=1000):
        for ou in page:
            if ou.get("id"):
                org_units[ou["id"]] = ou.get("path") or ""
    return MetadataSnapshot(destination, now, data_sets, elements, coc_combo, org_units, default_coc,
                            await _server_version(client))


async def _server_version(client: Any) -> str | None:
    """The destination's version from ``/api/system/info`` (never the OpenAPI document: 2.43/2.44 say 2.42 there)."""
    if getattr(client, "version", None) is None and hasattr(client, "system_info"):
        await client.system_info()  # a failure leaves the version unknown: the ≤2.42 codes are used
    version = getattr(client, "version", None)
    return ".".join(str(p) for p in version) if version else None


class MetadataCache(service.Service):
    """Snapshots of every destination's metadata (see module docstring)."""

    log = Logger()
    name = "metadata-cache"

    def __init__(self, db: Any, clients: dict[str, Any], clock: Any, version: Any = None,
                 interval: float | None = None, max_age: float = 48 * 3600.0,
                 started: defer.Deferred[Any] | None = None) -> None:
        self.store = MetadataCacheStore(db)
        self.clients = clients
        self.clock = clock
        self.version = version
        self.interval = interval
        self.max_age = max_age
        self.started = started
        self.snapshots: dict[str, MetadataSnapshot] = {}
        self.errors: dict[str, dict[str, Any]] = {}
        self._running: dict[str, defer.Deferred[Any]] = {}
        self._loop: task.LoopingCall | None = None
        self._seen_version: str | None = None

    # --- service ----------------------------------------------------------------------------
    def startService(self) -> None:  # noqa: N802
        super().startService()
        self._loop = task.LoopingCall(self._tick)
        self._loop.clock = self.clock
        self._boot = defer.Deferred.fromCoroutine(self._first_load())
        self._boot.addErrback(lambda f: self.log.failure("Metadata cache start-up failed", f))

    def stopService(self) -> Any:  # noqa: N802
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        return defer.DeferredList(list(self._running.values()), consumeErrors=True)

    async def _first_load(self) -> None:
        if self.started is not None:
            # A private Deferred: awaiting the shared one directly would replace its result for
            # the other parts of the gateway that wait on it.
            ready: defer.Deferred[None] = defer.Deferred()

            def release(result: Any) -> Any:
                ready.callback(None)
                return result

            self.started.addBoth(release)
            await ready
        if not self.running:
            return  # stopped while waiting for the database: nothing to load
        await self.reload()
        if not self.running:
            return
        assert self._loop is not None
        if self.interval:
            self._loop.start(self.interval, now=False).addErrback(
                lambda f: self.log.failure("Metadata refresh loop stopped", f))
        if any(self.state(name) != "fresh" for name in self.clients):
            await self._tick()

    async def _tick(self) -> None:
        for name in self.clients:
            try:
                await self.refresh(name)
            except Exception:  # noqa: BLE001 - recorded in self.errors; the loop must survive
                pass

    # --- reading ------------------------------------------------------------------------------
    async def reload(self) -> None:
        """Load every destination's persisted snapshot from PostgreSQL."""
        for name in self.clients:
            snapshot = MetadataSnapshot.from_rows(name, await self.store.load(name))
            if snapshot is not None:
                self.snapshots[name] = snapshot

    async def current(self, destination: str) -> MetadataSnapshot | None:
        """The snapshot to validate against (reloaded when another process refreshed it)."""
        if self.version is not None:
            version = await self.version.current()
            if version is not None and version != self._seen_version:
                first = self._seen_version is None
                self._seen_version = version
                if not first:
                    try:
                        await self.reload()
                    except Exception as e:  # noqa: BLE001 - keep the in-memory snapshot
                        self.log.warn("Could not reload metadata: {error}", error=e)
        return self.snapshots.get(destination)

    def state(self, destination: str) -> str:
        """``empty``, ``fresh`` or ``stale``."""
        snapshot = self.snapshots.get(destination)
        if snapshot is None:
            return "empty"
        return "stale" if self.clock.seconds() - snapshot.fetched_at > self.max_age else "fresh"

    def status(self) -> dict[str, Any]:
        """Per destination: state, age, sizes, last error, refresh running."""
        out: dict[str, Any] = {}
        now = self.clock.seconds()
        for name in self.clients:
            snapshot = self.snapshots.get(name)
            entry: dict[str, Any] = {"state": self.state(name), "refreshing": name in self._running,
                                     "refresh_interval_seconds": self.interval, "max_age_seconds": self.max_age}
            if snapshot is not None:
                entry["fetched_at"] = iso(snapshot.fetched_at)
                entry["age_seconds"] = round(now - snapshot.fetched_at, 1)
                entry["counts"] = snapshot.counts()
            if name in self.errors:
                entry["last_error"] = self.errors[name]
            out[name] = entry
        return out

    # --- refreshing ---------------------------------------------------------------------------
    def refresh(self, destination: str) -> defer.Deferred[dict[str, Any]]:
        """Fetch, persist and install one destination's metadata (one refresh at a time each)."""
        running = self._running.get(destination)
        if running is not None:
            follower: defer.Deferred[dict[str, Any]] = defer.Deferred()

            def follow(result: Any) -> Any:
                follower.callback(result)
                return result

            running.addBoth(follow)
            return follower
        d = defer.Deferred.fromCoroutine(self._refresh(destination))

        def done(result: Any) -> Any:
            self._running.pop(destination, None)
            return result

        d.addBoth(done)
        if not d.called:
            self._running[destination] = d
        return d

    async def _refresh(self, destination: str) -> dict[str, Any]:
        started = self.clock.seconds()
        try:
            snapshot = await fetch_snapshot(self.clients[destination], destination, started)
            await self.store.replace(destination, snapshot.rows())
        except Exception as e:
            self.errors[destination] = {"at": iso(self.clock.seconds()), "message": str(e) or type(e).__name__}
            self.log.warn("Metadata refresh of {dest} failed: {error}", dest=destination, error=e)
            raise
        self.snapshots[destination] = snapshot
        self.errors.pop(destination, None)
        if self.version is not None:
            await self.version.bump()
            self._seen_version = await self.version.current()
        self.log.info("Metadata of {dest} refreshed: {counts}", dest=destination, counts=snapshot.counts())
        return {"destination": destination, "fetched_at": iso(snapshot.fetched_at), "counts": snapshot.counts(),
                "duration_seconds": round(self.clock.seconds() - started, 3)}


def iso(epoch: float) -> str:
    """Epoch seconds as an ISO-8601 UTC timestamp."""
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat()
