"""SyncRig: real PostgreSQL + Redis, a main DHIS2 simulator and CC simulators, the real dispatcher.

The configuration is a YAML file in a temporary directory (``api:`` keys for the main DHIS2 and
the ``cc_*`` lists, ``servers:`` for the CC simulators) loaded with ``load_config`` like
production; the sync, planner, kind and dispatcher are wired by the builders of ``dhis2gw.wiring.features``.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from typing import Any

import yaml
from twisted.internet import defer, reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from dhis2gw.config import load_config
from dhis2gw.delivery.dispatcher import Dispatcher
from dhis2gw.delivery.retry import RetryPolicy
from dhis2gw.dhis2.destinations import Destinations
from dhis2gw.kinds.orgunit import OrgUnitKind
from dhis2gw.queue.feed import SubmissionQueue
from dhis2gw.sim import Metadata, Simulator, SimulatorServer
from dhis2gw.storage.orgunit_propagation import PropagationStore
from dhis2gw.storage.submissions import FINAL_STATES, SubmissionStore
from dhis2gw.wiring.features import build_sync
from tests.support.backends import open_database, open_redis
from tests.support.services import test_environ

ROOT = "pDomLOJBzpp"  # Zambara (level 1) in the bundled country and the generated tree
NORTH = "OZRoMx0Tm10"  # Northern Region (level 2)


def metadata_without_units(keep_levels_below: int = 0) -> Metadata:
    """The bundled country with no org units at all (or only those above ``keep_levels_below``)."""
    full = Metadata.load_default()
    raw = Metadata.default_raw()
    if keep_levels_below:
        keep = {uid for uid, ou in full.objects["organisationUnits"].items() if ou["level"] < keep_levels_below}
        raw["organisationUnits"] = [o for o in raw["organisationUnits"] if o["id"] in keep]
    else:
        raw["organisationUnits"] = []
    return Metadata(raw)


class SyncRig(TestCase):
    """Base class; subclasses set ``cc`` (name -> metadata factory) and ``roles`` (cc key -> names)."""

    timeout = 120
    main_metadata: Any = staticmethod(Metadata.load_default)
    cc: dict[str, Any] = {}
    roles: dict[str, str] = {}
    facility_level = 5
    probe_interval = 0.2

    async def rig_setup(self) -> None:
        self.dsn, self.db = await open_database(self)
        self.redis, self.prefix = open_redis(self)
        self.sims: dict[str, Simulator] = {}
        self.servers: dict[str, SimulatorServer] = {}
        for name, factory in [("main", self.main_metadata), *self.cc.items()]:
            sim = Simulator("2.40", clock=reactor, metadata=factory())
            server = SimulatorServer(sim, reactor)
            await server.start(0)
            self.addCleanup(server.stop)
            self.sims[name], self.servers[name] = sim, server
        self.config = self.load(self.roles)
        self.destinations = Destinations(reactor, self.config)
        self.addCleanup(self.destinations.stopService)
        self.store = SubmissionStore(self.db)
        self.queue = SubmissionQueue(self.redis, reactor, self.prefix, lease_seconds=60)
        self.kinds: dict[str, Any] = {"orgunit": OrgUnitKind(PropagationStore(self.db))}
        self.dispatcher: Dispatcher | None = None

    def load(self, roles: dict[str, str]) -> Any:
        """A Config from a YAML file naming the simulators (main + ``servers:``)."""
        document = {
            "api": {"dhis2_base_url": self.servers["main"].base_url, "dhis2_user": "admin",
                    "dhis2_password": "district", "dhis2_tree_i_ds": ROOT,
                    "dhis2_facility_level": self.facility_level, "sync_cron_expression": "0 0 1 1 *", **roles},
            "servers": {name: {"base_url": self.servers[name].base_url, "user": "admin", "password": "district",
                               "max_concurrent": 3} for name in self.cc},
        }
        directory = tempfile.mkdtemp(prefix="dhis2gw-sync-")
        path = os.path.join(directory, "dhis2gw.yml")
        with open(path, "w", encoding="utf-8") as f:
            yaml.safe_dump(document, f)
        self.addCleanup(lambda: (os.unlink(path), os.rmdir(directory)))
        env = test_environ(self.dsn, self.prefix, DHIS2GW_BREAKER_PROBE_INTERVAL=str(self.probe_interval),
                           DHIS2GW_BACKOFF_BASE="0.05", DHIS2GW_BACKOFF_CAP="0.2", DHIS2GW_BREAKER_THRESHOLD="3",
                           DHIS2GW_DHIS2_CONNECT_TIMEOUT="2", DHIS2GW_DHIS2_READ_TIMEOUT="10")
        return load_config(path, env)

    def setUp(self) -> defer.Deferred[Any]:
        return defer.Deferred.fromCoroutine(self.rig_setup())

    def start_dispatcher(self) -> Dispatcher:
        cfg = self.config
        self.dispatcher = Dispatcher(
            reactor, self.queue, self.store, self.kinds, self.destinations.clients,
            RetryPolicy(cfg.delivery.backoff_base, cfg.delivery.backoff_cap, 3),
            breaker_threshold=cfg.delivery.breaker_threshold, probe_interval=cfg.delivery.breaker_probe_interval,
            housekeeping_interval=0.5, heartbeat_seconds=5, shutdown_timeout=5,
            max_concurrent={n: e.max_concurrent for n, e in cfg.destinations().items()})
        self.dispatcher.startService()
        self.addCleanup(self.dispatcher.stopService)
        return self.dispatcher

    def make_sync(self) -> Any:
        """The HierarchySync exactly as ``dhis2gw.wiring.features`` builds it for a gateway."""
        return build_sync(self.config, self.db, self.destinations.clients, self.store, self.queue, self.dispatcher)

    async def orgunit_submissions(self) -> list[dict[str, Any]]:
        return await self.db.fetch("t", "SELECT id, destination, status, value_count, dhis2_payload, import_count"
                                   " FROM submissions WHERE kind = 'orgunit' ORDER BY id")

    async def wait_final(self, ids: Iterable[int], timeout: float = 60.0) -> dict[int, str]:
        wanted = list(ids)
        deadline = reactor.seconds() + timeout
        while True:
            rows = await self.db.fetch("t", "SELECT id, status FROM submissions WHERE id = ANY(%s)", (wanted,))
            current = {r["id"]: r["status"] for r in rows}
            if all(current.get(i) in FINAL_STATES for i in wanted):
                return current
            if reactor.seconds() > deadline:
                self.fail(f"not final after {timeout}s: {current}")
            await deferLater(reactor, 0.05, lambda: None)

    def writes(self, name: str) -> list[tuple[str, str]]:
        """(method, path) of every org-unit write the simulator ``name`` received, in order."""
        return [(r.method, r.path) for r in self.sims[name].store.requests
                if r.method in ("POST", "PUT", "PATCH", "DELETE") and "organisationUnit" in r.path]

    async def main_write(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """Change the main simulator through its API (as a DHIS2 user would)."""
        client = self.destinations.clients["main"]
        if method == "POST":
            outcome = await client.create_org_unit(body)
        else:
            outcome = await client.update_org_unit(path, body)
        self.assertEqual(outcome.kind.value, "delivered", outcome.message)
        return outcome
