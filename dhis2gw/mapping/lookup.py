"""In-memory mapping lookups for the ingest hot path, invalidated across processes.

:class:`SharedVersion` is a counter in Redis (``<prefix>:<name>:version``): a process that
changes the data INCRs it; every process re-reads it at most once per ``check_interval`` and
drops its caches when it moved. When Redis does not answer, callers bypass the cache (the
database is always right), so a missed invalidation cannot serve stale mappings for long.

:class:`CachedMappings` has the interface of :class:`dhis2gw.storage.mappings.MappingStore`
(what ``AggregateKind`` calls) and the same semantics: for each key the most specific row wins
(source_name and instance_name set beat empty or ``default`` ones, which mean "any").
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from twisted.logger import Logger

from dhis2gw.storage.mappings import MappingAdminStore, MappingStore, scope_rank

_SCHEME_COLUMN = {"CODE": "code", "NAME": "name", "UID": "dataelement"}


class SharedVersion:
    """A cross-process change counter (see module docstring)."""

    log = Logger()

    def __init__(self, redis: Any, clock: Any, key: str, check_interval: float = 1.0) -> None:
        self.redis = redis
        self.clock = clock
        self.key = key
        self.check_interval = check_interval
        self.seen: str | None = None
        self.checked_at = float("-inf")
        self.local = 0  # bumped by in-process changes, so this process never waits for the interval

    async def current(self) -> str | None:
        """The version to key caches by, or None when it is unknown (Redis unavailable)."""
        now = self.clock.seconds()
        if self.seen is not None and now - self.checked_at < self.check_interval:
            return f"{self.seen}.{self.local}"
        try:
            value = await self.redis.call("GET", self.key, timeout=0.5)
        except Exception:  # noqa: BLE001 - RedisUnavailable or not started: bypass caches
            self.seen = None
            return None
        self.seen = value.decode() if isinstance(value, bytes) else str(value or "0")
        self.checked_at = now
        return f"{self.seen}.{self.local}"

    async def bump(self) -> None:
        """Record a change here and tell the other processes."""
        self.local += 1
        try:
            await self.redis.call("INCR", self.key, timeout=1.0)
        except Exception as e:  # noqa: BLE001 - the others catch up within check_interval of Redis returning
            self.log.warn("Could not publish a change of {key}: {error}", key=self.key, error=e)
            self.seen = None
        self.checked_at = float("-inf")


class _Scope:
    """Every de/ou mapping applying to one (source_name, instance_name), indexed for lookups."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.de: dict[str, dict[str, list[tuple[int, dict[str, Any]]]]] = {"code": {}, "name": {}, "dataelement": {}}
        self.ou: dict[str, tuple[int, str]] = {}
        for row in rows:
            rank = scope_rank(row)
            if row["what"] == "de":
                for column, index in self.de.items():
                    index.setdefault(row[column], []).append((rank, row))
            else:
                for key in {row["source_orgunit"], row["code"]}:
                    if key and (key not in self.ou or rank > self.ou[key][0]):
                        self.ou[key] = (rank, row["destination_orgunit"])

    def data_values(self, keys: list[str], column: str) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for key in keys:
            lookup, coc = (key.split(".", 1) + [""])[:2] if column == "dataelement" else (key, "")
            best: tuple[int, dict[str, Any]] | None = None
            for rank, row in self.de[column].get(lookup, ()):
                if coc and row["category_option_combo"] not in ("", coc):
                    continue
                if best is None or rank > best[0]:
                    best = (rank, row)
            if best is not None:
                found[key] = best[1]
        return found


class CachedMappings:
    """MappingStore's lookups served from memory (see module docstring)."""

    def __init__(self, db: Any, version: SharedVersion, max_scopes: int = 64) -> None:
        self.direct = MappingStore(db)
        self.admin = MappingAdminStore(db)
        self.version = version
        self.max_scopes = max_scopes
        self._scopes: OrderedDict[tuple[str, str], _Scope] = OrderedDict()
        self._version: str | None = None
        self.loads = 0  # how many times a scope was read from the database (tests, metrics)

    async def _scope(self, source_name: str, instance_name: str) -> _Scope | None:
        version = await self.version.current()
        if version is None:
            self._scopes.clear()
            return None
        if version != self._version:
            self._scopes.clear()
            self._version = version
        key = (source_name, instance_name)
        scope = self._scopes.get(key)
        if scope is None:
            scope = _Scope(await self.admin.scope_rows(source_name, instance_name))
            self.loads += 1
            if self._version == version:
                self._scopes[key] = scope
                while len(self._scopes) > self.max_scopes:
                    self._scopes.popitem(last=False)
        else:
            self._scopes.move_to_end(key)
        return scope

    async def data_value_mappings(self, keys: Iterable[str], scheme: str, source_name: str,
                                  instance_name: str) -> dict[str, dict[str, Any]]:
        """Same as MappingStore.data_value_mappings."""
        wanted = list(dict.fromkeys(keys))
        scope = await self._scope(source_name, instance_name)
        if scope is None:
            return await self.direct.data_value_mappings(wanted, scheme, source_name, instance_name)
        return scope.data_values(wanted, _SCHEME_COLUMN.get(scheme.upper(), "code"))

    async def org_unit_mapping(self, source_orgunit: str, source_name: str, instance_name: str) -> str | None:
        """Same as MappingStore.org_unit_mapping."""
        scope = await self._scope(source_name, instance_name)
        if scope is None:
            return await self.direct.org_unit_mapping(source_orgunit, source_name, instance_name)
        hit = scope.ou.get(source_orgunit)
        return (hit[1] or None) if hit else None

    async def changed(self) -> None:
        """Mappings were written: forget everything here and tell the other processes."""
        self._scopes.clear()
        await self.version.bump()
