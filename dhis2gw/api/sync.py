"""HTTP areas of the org-unit sync and the cron: ``GET /orgunits``, ``POST /sync/orgunits``, ``GET /cron``."""
from __future__ import annotations

import math
from datetime import date, datetime
from typing import Any

from dhis2gw.api.routing import ANY_USER, OPERATOR, Call, Response, route
from dhis2gw.errors import ApiError
from dhis2gw.runtime.cron import Cron, CronJob, JobBusy, JobRunner, next_fire_time
from dhis2gw.storage.cron_runs import CronRunStore
from dhis2gw.storage.orgunit_propagation import PropagationStore
from dhis2gw.storage.orgunit_tree import OrgUnitStore, UnitQuery


def _iso(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return value


def unit_json(row: dict[str, Any]) -> dict[str, Any]:
    """One unit as the API shows it."""
    return {
        "uid": row["uid"].strip(), "code": row["code"], "name": row["name"], "short_name": row["short_name"],
        "level": row["level"], "path": row["path"],
        "parent": row["parent_uid"].strip() if row["parent_uid"] else None,
        "opening_date": _iso(row["opening_date"]), "closed_date": _iso(row["closed_date"]),
        "attributes": row["attributes"], "groups": [g.strip() for g in row["groups"] or []],
        "district": ({"uid": row["district_uid"].strip(), "name": row["district_name"]}
                     if row.get("district_uid") else None),
        "dhis2_last_updated": _iso(row["dhis2_last_updated"]), "gone": row["gone_from_dhis2"],
        "gone_at": _iso(row["gone_at"]), "updated_at": _iso(row["updated_at"]),
    }


_QUERY = tuple({"name": n, "in": "query", "schema": {"type": t}, "description": d} for n, t, d in (
    ("level", "integer", "only units at this level (1 = root)"),
    ("parent", "string", "only direct children of this uid"),
    ("path", "string", "path prefix, e.g. /ImspTQPwCqd/O6uvpzGd5pu (the subtree)"),
    ("q", "string", "name or code contains (case-insensitive), or exact uid"),
    ("district", "string", "units in this district (uid, code or name of a unit at the district level)"),
    ("include_gone", "boolean", "also units gone from DHIS2 (default false)"),
    ("page", "integer", "1-based page"),
    ("page_size", "integer", "1..1000, default 50"),
))


class OrgUnitsApi:
    """``GET /orgunits`` (any user) and ``POST /sync/orgunits`` (admin, operator)."""

    def __init__(self, store: OrgUnitStore, propagation: PropagationStore, runner: JobRunner,
                 sync_job: CronJob | None, district_level_name: str) -> None:
        self.store = store
        self.propagation = propagation
        self.runner = runner
        self.sync_job = sync_job
        self.district_level_name = district_level_name

    @route("GET", "/orgunits", roles=ANY_USER, summary="Org units of the local copy of the DHIS2 hierarchy",
           tags=("orgunits",), query=_QUERY, responses={400: "bad filter", 404: "unknown district level"})
    async def list_units(self, call: Call) -> dict[str, Any]:
        page = call.int_arg("page", 1, minimum=1)
        page_size = call.int_arg("page_size", 50, minimum=1, maximum=1000)
        district_level = await self.store.level_number(self.district_level_name)
        district_uids = None
        district = call.arg("district")
        if district:
            if district_level is None:
                raise ApiError(404, "unknown_district_level",
                               f"no org-unit level is named {self.district_level_name!r}"
                               " (api.dhis2_district_oulevel_name); has the org-unit sync run?")
            district_uids = await self.store.find_at_level(district_level, district)
        level = call.int_arg("level", 0, minimum=0, maximum=50)
        query = UnitQuery(level=level or None, parent=call.arg("parent") or None, path_prefix=call.arg("path") or None,
                          q=call.arg("q") or None, district_uids=district_uids,
                          include_gone=call.bool_arg("include_gone"), page=page, page_size=page_size)
        rows, total = await self.store.query(query, district_level)
        return {"items": [unit_json(r) for r in rows], "total": total, "page": page, "page_size": page_size,
                "total_pages": math.ceil(total / page_size) if total else 0,
                "district_level": {"name": self.district_level_name, "level": district_level}}

    @route("POST", "/sync/orgunits", roles=OPERATOR, summary="Run the org-unit sync now (and plan propagation)",
           tags=("orgunits",), body_schema=None, body_required=False,
           responses={409: "a sync is already running", 502: "the main DHIS2 could not be read (nothing changed)",
                      503: "no main DHIS2 configured"})
    async def sync_now(self, call: Call) -> Response:
        if self.sync_job is None:
            raise ApiError(503, "sync_unavailable", "the org-unit sync needs the main DHIS2 (api.dhis2_base_url)",
                           headers={"Retry-After": "60"})
        try:
            result = await self.runner.execute(self.sync_job, None)
        except JobBusy:
            raise ApiError(409, "sync_running", "an org-unit sync is already running") from None
        if result.outcome != "ok":
            raise ApiError(502, "sync_failed", "the org-unit sync could not read the main DHIS2",
                           {"run_id": result.run_id, "outcome": result.outcome, "report": result.detail})
        return Response({"run_id": result.run_id, "outcome": result.outcome, "report": result.detail})


class CronApi:
    """``GET /cron``: the jobs, their next run and their last outcome (admin, operator)."""

    def __init__(self, runs: CronRunStore, jobs: list[CronJob], timezone: Any,
                 clock: Any, cron: Cron | None, role: str) -> None:
        self.runs = runs
        self.jobs = jobs
        self.timezone = timezone
        self.clock = clock
        self.cron = cron  # None: no scheduler on this role
        self.role = role

    @route("GET", "/cron", roles=OPERATOR, summary="Scheduled jobs, next run and last outcome", tags=("cron",))
    async def list_jobs(self, call: Call) -> dict[str, Any]:
        last = await self.runs.last_runs()
        cron = self.cron
        now = datetime.fromtimestamp(self.clock.seconds(), self.timezone)
        items = []
        jobs = list(cron.jobs.values()) if cron is not None and cron.scheduler is not None else self.jobs
        for job in jobs:
            nxt = cron.next_run(job.name) if cron is not None and cron.scheduler is not None else None
            nxt = nxt or next_fire_time(job.cron_expression, self.timezone, now)
            run = last.get(job.name)
            items.append({
                "name": job.name, "cron_expression": job.cron_expression, "next_run": _iso(nxt),
                "running_here": cron is not None and job.name in cron.runner.running,
                "last_run": None if run is None else {
                    "id": run["id"], "scheduled_for": _iso(run["scheduled_for"]), "started_at": _iso(run["started_at"]),
                    "finished_at": _iso(run["finished_at"]), "outcome": run["outcome"] or "running",
                    "detail": run["detail"], "host": run["host"]},
            })
        return {"timezone": str(self.timezone), "scheduler_here": cron is not None, "role": self.role,
                "jobs": items}
