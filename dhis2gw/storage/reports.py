"""ReportStore: "did facility X report for period P?" — the facility × period report of a data set.

One statement reads the latest submission of every (period, org unit) of the data set for the
periods asked (``DISTINCT ON`` over the ``submissions_report`` index of migration 0009, an
index-only scan); a second lists the facilities of the org-unit cache (the facility level, or the
level asked, optionally under one parent), so a facility that sent nothing shows as missing.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from twisted.internet import defer

from dhis2gw.storage.database import Database

#: At most this many facilities in one report (a national facility list is a few thousand).
MAX_FACILITIES = 20_000


class ReportStore:
    """SQL of the arrivals report."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def latest_cells(self, data_set: str, periods: Sequence[str]) -> list[dict[str, Any]]:
        """Per org unit: ``periods``, ``statuses`` and ``ids`` (parallel arrays) of the latest
        submission of each of its cells — one row per facility, not per cell, to keep the answer small."""
        return await self.db.fetch(
            "reports.latest_cells",
            "SELECT org_unit, array_agg(period) AS periods, array_agg(status) AS statuses, array_agg(id) AS ids"
            " FROM (SELECT DISTINCT ON (period, org_unit) period, org_unit, status, id FROM submissions"
            " WHERE data_set = %s AND period = ANY(%s) AND org_unit IS NOT NULL"
            " ORDER BY period, org_unit, id DESC) c GROUP BY org_unit", (data_set, list(periods)))

    async def facilities(self, level: int | None, parent: str | None) -> list[dict[str, Any]]:
        """Org units of the cache at ``level`` (default: the deepest level) under ``parent``, by name."""
        return await self.db.fetch(
            "reports.facilities",
            "SELECT uid::text AS uid, code, name FROM organisation_units"
            " WHERE NOT gone_from_dhis2"
            " AND level = coalesce(%s, (SELECT max(level) FROM organisation_units WHERE NOT gone_from_dhis2))"
            " AND (%s::text IS NULL OR path LIKE '%%/' || %s || '/%%' OR uid = %s)"
            " ORDER BY name, uid LIMIT %s", (level, parent, parent, parent, MAX_FACILITIES))

    async def report(self, data_set: str, periods: Sequence[str], level: int | None,
                     parent: str | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The facilities and the cells, read on two pool connections at once."""
        cells, units = await defer.gatherResults(
            [defer.Deferred.fromCoroutine(self.latest_cells(data_set, periods)),
             defer.Deferred.fromCoroutine(self.facilities(level, parent))], consumeErrors=True)
        return units, cells
