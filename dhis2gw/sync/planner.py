"""PropagationPlanner: from the local copy of the tree to ``orgunit`` submissions for CC servers.

Which units a CC server should get depends on the lists it is named in:

==============================  ==============================================================
``cc_dhis2_hierarchy_servers``  every unit of the tree (so the whole hierarchy, parents first)
``cc_dhis2_servers``            units at ``dhis2_facility_level``
``cc_dhis2_create_servers``     units that appeared after the first sync (not in the baseline)
``cc_dhis2_update_servers``     units whose propagated fields changed since they were first seen
``cc_dhis2_ou_group_add_servers`` each unit's group memberships (adds only, never removals)
==============================  ==============================================================

Planning is a diff against ``orgunit_propagation``: a unit is sent when the server's row for it is
missing or holds another hash, so a repeat plan sends nothing and a lost batch is re-planned.

**Ordering (parents before children).** A server gets at most ONE pending batch: one submission
holding every operation for it, units sorted by level then path, group adds last. The ``orgunit``
kind applies them in order, so a parent is always written before its children. A server whose
previous batch is still pending is skipped this run and planned again on the next one (the diff
finds whatever is still missing), so two batches for one server never race.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from twisted.logger import Logger

from dhis2gw.dhis2.uids import generate_uid
from dhis2gw.queue.connection import RedisUnavailable
from dhis2gw.storage.orgunit_propagation import PropagationStore
from dhis2gw.storage.orgunit_tree import OrgUnitStore
from dhis2gw.storage.statuses import DELIVERED, REJECTED
from dhis2gw.storage.submissions import NewSubmission, SubmissionStore
from dhis2gw.sync.units import groups_hash, payload_hash, payload_of_row

IN_STEP = (DELIVERED, REJECTED)  # a rejected body would be rejected again: wait for a change
ENDPOINT = "/api/v2/sync/orgunits"


@dataclass(frozen=True)
class CCRoles:
    """The ``cc_*`` server lists (names of enabled destinations)."""

    facility: tuple[str, ...] = ()
    hierarchy: tuple[str, ...] = ()
    create: tuple[str, ...] = ()
    update: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, api: Any, enabled: Sequence[str]) -> CCRoles:
        """Roles from the ``api`` section; names of disabled servers are left out."""
        def keep(names: Sequence[str]) -> tuple[str, ...]:
            return tuple(n for n in names if n in enabled)

        return cls(keep(api.cc_dhis2_servers), keep(api.cc_dhis2_hierarchy_servers),
                   keep(api.cc_dhis2_create_servers), keep(api.cc_dhis2_update_servers),
                   keep(api.cc_dhis2_ou_group_add_servers))

    @property
    def servers(self) -> list[str]:
        """Every server named in any role, in first-mention order."""
        out: list[str] = []
        for names in (self.hierarchy, self.facility, self.create, self.update, self.groups):
            out += [n for n in names if n not in out]
        return out


class PropagationPlanner:
    """Plans and queues the ``orgunit`` batches of one sync run."""

    log = Logger()

    def __init__(self, units: OrgUnitStore, propagation: PropagationStore, submissions: SubmissionStore,
                 queue: Any, roles: CCRoles, facility_level: int,
                 wake: Callable[[str], None] | None = None) -> None:
        self.units = units
        self.propagation = propagation
        self.submissions = submissions
        self.queue = queue
        self.roles = roles
        self.facility_level = facility_level
        self.wake = wake

    def _wants_unit(self, server: str, unit: dict[str, Any], row: dict[str, Any] | None, digest: str) -> bool:
        roles = self.roles
        in_step = row is not None and row["status"] in IN_STEP and row["content_hash"] == digest
        if not in_step and (server in roles.hierarchy
                            or (server in roles.facility and unit["level"] == self.facility_level)
                            or (server in roles.update and unit["revision"] > 1)):
            return True
        # Create servers get a new unit once; later changes reach them only through another role.
        return server in roles.create and not unit["baseline"] and (row is None or row["status"] not in IN_STEP)

    def _unit_op(self, server: str, unit: dict[str, Any], row: dict[str, Any] | None) -> str:
        if row is not None and row["status"] == "delivered":
            return "update"
        if server in self.roles.create and not unit["baseline"]:
            return "create"
        copies_unit = server in self.roles.hierarchy or (
            server in self.roles.facility and unit["level"] == self.facility_level)
        # Wanted only as an update of a unit the server already has: PUT first.
        return "update" if not copies_unit and server in self.roles.update and unit["revision"] > 1 else "create"

    async def plan(self, run_label: str = "sync") -> dict[str, Any]:
        """Queue one batch per CC server that needs one; returns counts per server."""
        servers = self.roles.servers
        report: dict[str, Any] = {"servers": {}, "operations": 0, "submissions": 0, "skipped_pending": []}
        if not servers:
            return report
        pending = await self.propagation.pending_servers(servers)
        units = await self.units.live_units()
        memberships = await self.units.memberships() if self.roles.groups else {}
        rows = await self.propagation.rows(servers)
        for server in servers:
            if server in pending:
                report["skipped_pending"].append(server)
                self.log.info("org-unit propagation to {server}: previous batch still pending; planning it later",
                              server=server)
                continue
            ops: list[dict[str, Any]] = []
            for unit in units:
                row = rows.get((server, unit["uid"], "unit"))
                body = payload_of_row(unit)
                digest = payload_hash(body)
                if self._wants_unit(server, unit, row, digest):
                    ops.append({"op": self._unit_op(server, unit, row), "uid": unit["uid"], "hash": digest,
                                "level": unit["level"], "body": body})
            if server in self.roles.groups:
                for unit in units:
                    groups = memberships.get(unit["uid"])
                    if not groups:
                        continue
                    row = rows.get((server, unit["uid"], "group"))
                    digest = groups_hash(groups)
                    if row is None or row["status"] not in IN_STEP or row["content_hash"] != digest:
                        ops.append({"op": "group", "uid": unit["uid"], "hash": digest, "groups": groups})
            if ops:
                sid = await self._queue(server, ops, run_label)
                counts = Counter(op["op"] for op in ops)
                report["servers"][server] = {"submission_id": sid, **counts}
                report["operations"] += len(ops)
                report["submissions"] += 1
        return report

    async def _queue(self, server: str, ops: list[dict[str, Any]], run_label: str) -> int:
        counts = dict(Counter(op["op"] for op in ops))
        created = await self.submissions.create(NewSubmission(
            uid=generate_uid(), kind="orgunit", destination=server, submitter_id=None, endpoint=ENDPOINT,
            payload={"source": "orgunit-sync", "run": run_label, "server": server, "operations": counts},
            dhis2_payload={"operations": ops}, import_params={}, value_count=len(ops)))
        sid = int(created.row["id"])
        await self.propagation.mark(server, [(op["uid"], "group" if op["op"] == "group" else "unit", op["hash"],
                                              "queued") for op in ops], sid)
        try:
            await self.queue.enqueue(server, sid, timeout=5)
        except RedisUnavailable as e:
            self.log.warn("orgunit batch {sid} for {server} recorded but not pushed ({error});"
                          " the reconciler will queue it", sid=sid, server=server, error=e)
            return sid
        if self.wake is not None:
            self.wake(server)
        self.log.info("org-unit propagation: queued batch {sid} for {server}: {counts}", sid=sid, server=server,
                      counts=counts)
        return sid
