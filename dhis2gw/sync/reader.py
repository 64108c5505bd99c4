"""Reads of the org-unit hierarchy from the main DHIS2 (paged; reference/dhis2-api.md §4.1).

The tree is "every unit under one of the roots, down to the facility level": one filtered list
per root (``path:like:<root>`` and ``level:le:<facility level>``), merged. With no roots
configured the whole tree down to the facility level is read. Units come ordered by level then
id, so parents arrive before their children.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from dhis2gw.dhis2.metadata import fetch_organisation_unit_levels
from dhis2gw.sync.units import UNIT_FIELDS, local_row

#: ``lastUpdated`` is re-read with this overlap: a unit committed late with an earlier stamp is not missed.
WATERMARK_OVERLAP = timedelta(minutes=5)
_STAMP = "%Y-%m-%dT%H:%M:%S.%f"


class TreeReader:
    """Reads units, unit ids, levels and groups of the synced tree from one DHIS2 client."""

    def __init__(self, client: Any, roots: Sequence[str], max_level: int, page_size: int = 1000) -> None:
        self.client = client
        self.roots = tuple(roots)
        self.max_level = max_level
        self.page_size = page_size

    def _scopes(self) -> list[list[str]]:
        level = f"level:le:{self.max_level}"
        return [[f"path:like:{root}", level] for root in self.roots] or [[level]]

    async def units(self, since: str | None = None) -> list[dict[str, Any]]:
        """Local rows of every unit in the tree (changed since ``since`` when given), parents first."""
        seen: dict[str, dict[str, Any]] = {}
        for filters in self._scopes():
            async for page in self.client.organisation_units(fields=UNIT_FIELDS, filters=filters,
                                                             last_updated=since, page_size=self.page_size):
                for raw in page:
                    if isinstance(raw, dict) and raw.get("id") and raw["id"] not in seen:
                        seen[raw["id"]] = local_row(raw)
        return sorted(seen.values(), key=lambda r: (r["level"], r["path"]))

    async def unit_ids(self) -> set[str]:
        """The uid of every unit in the tree (the cheap read that finds units gone from DHIS2)."""
        ids: set[str] = set()
        for filters in self._scopes():
            async for page in self.client.organisation_units(fields="id", filters=filters,
                                                             page_size=max(self.page_size, 5000)):
                ids.update(raw["id"] for raw in page if isinstance(raw, dict) and raw.get("id"))
        return ids

    async def levels(self) -> list[dict[str, Any]]:
        """``[{uid, level, name}]`` of ``organisationUnitLevels``."""
        return [{"uid": lv["id"], "level": int(lv["level"]), "name": lv.get("name") or f"Level {lv['level']}"}
                for lv in await fetch_organisation_unit_levels(self.client) if lv.get("id") and lv.get("level")]

    async def groups(self) -> list[dict[str, Any]]:
        """``[{uid, code, name, members}]`` of every org-unit group (members: unit uids)."""
        data = await self.client.get_json("organisationUnitGroups", [
            ("fields", "id,code,name,organisationUnits[id]"), ("paging", "false")])
        out = []
        for g in (data.get("organisationUnitGroups") if isinstance(data, dict) else None) or []:
            if not isinstance(g, dict) or not g.get("id"):
                continue
            members = sorted({m["id"] for m in g.get("organisationUnits") or [] if isinstance(m, dict) and m.get("id")})
            out.append({"uid": g["id"], "code": g.get("code"), "name": g.get("name") or g["id"], "members": members})
        return out


def newest_stamp(rows: Sequence[dict[str, Any]], previous: str | None) -> str | None:
    """The largest ``lastUpdated`` of ``rows`` (ISO strings compare in time order), or ``previous``."""
    stamps = [r["dhis2_last_updated"] for r in rows if r.get("dhis2_last_updated")]
    if previous:
        stamps.append(previous)
    return max(stamps) if stamps else None


def read_since(watermark: str | None) -> str | None:
    """The ``lastUpdated:ge:`` value for an incremental read: the watermark minus the overlap."""
    if not watermark:
        return None
    text = watermark.replace("Z", "")
    for fmt in (_STAMP, "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"):
        try:
            moment = datetime.strptime(text[:26], fmt)
            break
        except ValueError:
            continue
    else:
        return watermark
    return (moment - WATERMARK_OVERLAP).strftime(_STAMP)[:-3]
