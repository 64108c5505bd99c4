"""HierarchySync: one run of the org-unit sync from the main DHIS2 into the local tables.

A run:

1. reads ``organisationUnitLevels`` and replaces the local levels (diff only);
2. reads the units of the tree — every unit on the first run (or after the roots or the facility
   level changed), else only those with ``lastUpdated`` at or after the stored watermark (minus a
   small overlap) — and upserts them; only real changes are written;
3. for a unit that moved (its path changed), rewrites the paths of its local descendants: DHIS2
   does not touch their ``lastUpdated``, so an incremental read would not bring them;
4. lists the ids of the whole tree (``fields=id``, cheap) and flags local units no longer in it as
   gone (``gone_from_dhis2``; rows are never deleted) — a unit that comes back is revived;
5. reads the groups with their members and replaces the local groups/memberships (diff only);
6. saves the watermark (the newest ``lastUpdated`` seen) and plans the CC propagation.

Runs never overlap in one process (a DeferredLock); across processes the cron claim sees to it.
"""
from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.logger import Logger

from dhis2gw.storage.orgunit_tree import OrgUnitStore
from dhis2gw.sync.planner import PropagationPlanner
from dhis2gw.sync.reader import TreeReader, newest_stamp, read_since

SOURCE = "main"


class HierarchySync:
    """Syncs the tree of the main DHIS2 into ``organisation_units`` and plans propagation."""

    log = Logger()

    def __init__(self, client: Any, store: OrgUnitStore, planner: PropagationPlanner | None,
                 roots: tuple[str, ...], facility_level: int, page_size: int = 1000) -> None:
        self.client = client
        self.store = store
        self.planner = planner
        self.reader = TreeReader(client, roots, facility_level, page_size)
        self.scope = {"roots": sorted(roots), "max_level": facility_level}
        self.lock = defer.DeferredLock()
        self.last_report: dict[str, Any] | None = None

    @property
    def busy(self) -> bool:
        """True while a run is in progress in this process."""
        return bool(self.lock.locked)

    async def run(self, trigger: str = "manual") -> dict[str, Any]:
        """One sync run; returns its counts (also stored in the cron run log by the caller)."""
        await self.lock.acquire()
        try:
            report = await self._run(trigger)
        finally:
            self.lock.release()
        self.last_report = report
        return report

    async def _run(self, trigger: str) -> dict[str, Any]:
        state = await self.store.state(SOURCE)
        full = state is None or state["scope"] != self.scope
        previous = None if state is None or full else state["watermark"]
        since = None if full else read_since(previous)
        levels_changed = await self.store.replace_levels(await self.reader.levels())
        units = await self.reader.units(since)
        upsert = await self.store.upsert_units(units, baseline=full)
        moved_descendants = 0
        if not full:
            for old_path, new_path, new_level in upsert.moved:
                moved_descendants += await self.store.move_descendants(old_path, new_path, new_level)
        ids = {u["uid"] for u in units} if full else await self.reader.unit_ids()
        gone = revived = 0
        if ids:
            gone = await self.store.mark_gone(ids)
            revived = await self.store.revive(ids) if not full else 0
        else:
            self.log.warn("org-unit sync: DHIS2 listed no units under {roots}; nothing is marked gone",
                          roots=self.scope["roots"] or "the whole tree")
        groups = await self.reader.groups()
        for group in groups:
            group["members"] = [m for m in group["members"] if m in ids] if ids else group["members"]
        group_counts = await self.store.replace_groups(groups)
        watermark = newest_stamp(units, previous)
        await self.store.save_state(SOURCE, self.scope, watermark, full)
        report: dict[str, Any] = {
            "trigger": trigger, "mode": "full" if full else "incremental", "since": since,
            "read": len(units), "inserted": len(upsert.inserted), "updated": len(upsert.updated),
            "moved": len(upsert.moved), "descendants_moved": moved_descendants, "gone": gone, "revived": revived,
            "levels_changed": levels_changed, **group_counts, "watermark": watermark,
        }
        if self.planner is not None:
            report["propagation"] = await self.planner.plan(trigger)
        self.log.info("org-unit sync ({mode}): read {read}, inserted {inserted}, updated {updated}, gone {gone}",
                      mode=report["mode"], read=report["read"], inserted=report["inserted"],
                      updated=report["updated"], gone=gone)
        return report
