"""``install(gateway)``: plugins for the old ``Gateway`` of ``dhis2gw.tap.build_gateway``.

# transitional: replaced by dhis2gw.wiring.root
Everything here adapts the old ``Gateway`` bag to the typed wiring: it builds the
``PluginContext`` from the gateway's handles, calls ``dhis2gw.wiring.plugins.load_plugins`` and
mounts / schedules the result the old way. The composition root ``dhis2gw.wiring.root`` does
this itself, and this module goes away with ``dhis2gw.tap.build_gateway``.
"""
from __future__ import annotations

import os
from types import MappingProxyType
from typing import Any, Callable, Optional

from dhis2gw.api.plugins import PluginsApi
from dhis2gw.delivery.observers import OutcomeObservers
from dhis2gw.storage.users import UserStore
from dhis2gw.wiring.context import PluginContext, QueueOperations
from dhis2gw.wiring.plugins import load_plugins


def context_from_gateway(gateway: Any) -> PluginContext:  # transitional: replaced by dhis2gw.wiring.root
    """The ``PluginContext`` of an old-style ``Gateway`` (its ingest checks list is shared)."""
    clients = gateway.destinations.clients if gateway.destinations is not None else {}
    return PluginContext(
        reactor=gateway.reactor, config=gateway.config, role=gateway.role, environ=os.environ,
        submissions=gateway.store, users=UserStore(gateway.db), dhis2=MappingProxyType(clients),
        queue=QueueOperations(gateway.queue, gateway.dispatcher), outcomes=OutcomeObservers(),
        ingest_checks=gateway.parts.setdefault("ingest_checks", []),
        add_service=lambda child: child.setServiceParent(gateway.service))


def _tell_outcomes(dispatcher: Any, outcomes: OutcomeObservers) -> None:  # transitional
    """Chain ``outcomes`` after each worker's own observer (the root gives it to the dispatcher instead)."""
    if dispatcher is None:
        return
    for worker in dispatcher.workers.values():
        previous: Optional[Callable[..., None]] = worker.observer

        def both(dest: str, row: dict[str, Any], outcome: Any, event: str,
                 previous: Optional[Callable[..., None]] = previous) -> None:
            if previous is not None:
                previous(dest, row, outcome, event)
            outcomes(dest, row, outcome, event)

        worker.observer = both


class _CronJobWithContext:  # transitional: dhis2gw.sync.wiring calls run(gateway)
    """An ``ICronJob`` whose ``run`` gets the plugin context whatever the old cron passes."""

    def __init__(self, job: Any, context: PluginContext) -> None:
        self.job = job
        self.context = context
        self.name = job.name
        self.cron_expression = job.cron_expression

    async def run(self, gateway: Any = None) -> Any:
        return await self.job.run(self.context)


def install(gateway: Any) -> None:  # transitional: replaced by dhis2gw.wiring.root
    """Load plugins into ``gateway`` and mount ``GET /api/v2/plugins`` (composition-root installer)."""
    context = context_from_gateway(gateway)
    load = load_plugins(context, gateway.kinds, gateway.config.server.plugins_directory)
    gateway.parts["plugins"] = load.report
    for prefix, area in load.areas:
        gateway.mount(area, prefix=prefix)
    gateway.parts.setdefault("cron_jobs", []).extend(_CronJobWithContext(job, context) for job in load.cron_jobs)
    _tell_outcomes(gateway.dispatcher, context.outcomes)  # after setup: lanes plugins added are included
    gateway.mount(PluginsApi(load.report))
