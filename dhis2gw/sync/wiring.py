"""``install(gateway)``: the org-unit sync, the ``orgunit`` kind, the cron service and their API areas.

Roles: the ``orgunit`` kind and the API areas are installed on every role (``POST /sync/orgunits``
runs the sync in the process that got the request). The **Cron service runs on ``all`` and
``worker``** — API-only processes stay request servers — and every scheduled execution is claimed
in ``cron_runs`` first, so several worker processes run each schedule once.

Jobs: ``orgunit_sync`` (``api.sync_cron_expression``; only when the main DHIS2 is configured),
``retry_reconcile`` (``api.retry_cron_expression`` → ``gateway.dispatcher.reconcile()``),
``metadata_refresh`` (when another feature put ``gateway.parts["metadata_refresh"]``: either an
object with ``cron_expression`` and async ``run()``, or an async callable run on the sync
schedule) and plugin jobs (``gateway.parts["cron_jobs"]``: `dhis2gw.interfaces.ICronJob`
providers, read when the service starts).
"""
from __future__ import annotations

from dataclasses import asdict
from typing import Any, Optional

from twisted.logger import Logger

from dhis2gw.runtime.cron import Cron, CronJob, JobRunner
from dhis2gw.kinds.orgunit import OrgUnitKind
from dhis2gw.storage.cron_runs import CronRunStore
from dhis2gw.storage.orgunit_propagation import PropagationStore
from dhis2gw.storage.orgunit_tree import OrgUnitStore
from dhis2gw.sync.api import CronApi, OrgUnitsApi
from dhis2gw.sync.hierarchy import HierarchySync
from dhis2gw.sync.planner import CCRoles, PropagationPlanner

log = Logger()


def build_sync(gateway: Any) -> Optional[HierarchySync]:
    """The HierarchySync of this gateway, or None when no main DHIS2 is configured."""
    config = gateway.config
    client = gateway.destinations.clients.get("main") if gateway.destinations is not None else None
    if client is None:
        return None
    store = OrgUnitStore(gateway.db)
    dispatcher = gateway.dispatcher
    roles = CCRoles.from_config(config.api, list(gateway.destinations.clients))
    planner = PropagationPlanner(store, PropagationStore(gateway.db), gateway.store, gateway.queue, roles,
                                 config.api.dhis2_facility_level,
                                 wake=dispatcher.wake if dispatcher is not None else None)
    return HierarchySync(client, store, planner, tuple(config.api.dhis2_tree_i_ds), config.api.dhis2_facility_level)


def _metadata_job(gateway: Any) -> Optional[CronJob]:
    refresher = gateway.parts.get("metadata_refresh")
    if refresher is None:
        return None
    expression = getattr(refresher, "cron_expression", None) or gateway.config.api.sync_cron_expression
    run = getattr(refresher, "run", None) or getattr(refresher, "refresh", None) or refresher

    async def work() -> Any:
        return await run()

    return CronJob("metadata_refresh", expression, work)


def _plugin_jobs(gateway: Any) -> list[CronJob]:
    jobs = []
    for plugin in gateway.parts.get("cron_jobs", []):
        async def work(plugin: Any = plugin) -> Any:
            return await plugin.run(gateway)

        jobs.append(CronJob(str(plugin.name), str(plugin.cron_expression), work))
    return jobs


def built_in_jobs(gateway: Any, sync: Optional[HierarchySync]) -> list[CronJob]:
    """The sync and reconcile jobs (those that exist on this gateway)."""
    api = gateway.config.api
    jobs = []
    if sync is not None:
        async def run_sync() -> Any:
            return await sync.run("cron")

        jobs.append(CronJob("orgunit_sync", api.sync_cron_expression, run_sync))
    if gateway.dispatcher is not None:
        dispatcher = gateway.dispatcher

        async def reconcile() -> Any:
            return asdict(await dispatcher.reconcile())

        jobs.append(CronJob("retry_reconcile", api.retry_cron_expression, reconcile, stale_after=3600.0))
    return jobs


def install(gateway: Any) -> None:
    """Register the orgunit kind, the cron service (roles all/worker) and the API areas."""
    db = gateway.db
    config = gateway.config
    gateway.kinds["orgunit"] = OrgUnitKind(PropagationStore(db))
    gateway.parts.setdefault("cron_jobs", [])
    sync = build_sync(gateway)
    gateway.parts["orgunit_sync"] = sync
    runs = CronRunStore(db)
    runner = JobRunner(runs)
    jobs = built_in_jobs(gateway, sync)

    def later_jobs() -> list[CronJob]:
        extra = [j for j in [_metadata_job(gateway)] if j is not None]
        return extra + _plugin_jobs(gateway)

    cron: Optional[Cron] = None
    if gateway.runs_worker:
        cron = Cron(gateway.reactor, runner, jobs, config.server.tzinfo, ready=db.started, extra_jobs=later_jobs,
                    shutdown_timeout=config.server.shutdown_timeout)
        cron.setServiceParent(gateway.service)
    gateway.parts["cron"] = cron
    sync_job: Optional[CronJob] = None
    if sync is not None:
        async def run_manual() -> Any:
            return await sync.run("manual")

        # Same job name as the scheduled one: the cron_runs claim keeps them from overlapping.
        sync_job = CronJob("orgunit_sync", config.api.sync_cron_expression, run_manual)
    gateway.mount(OrgUnitsApi(OrgUnitStore(db), PropagationStore(db), runner, sync_job,
                              config.api.dhis2_district_oulevel_name))
    gateway.mount(CronApi(runs, lambda: jobs + later_jobs(), config.server.tzinfo, gateway.reactor,
                          lambda: gateway.parts.get("cron"), gateway.role))
