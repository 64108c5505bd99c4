"""``dhis2gw --demo``: the embedded default a newcomer runs with ``make run``.

On top of the normal gateway (embedded PostgreSQL and Redis from conf/dev.yml) it

* starts the DHIS2 simulator in the same process, on the loopback port of ``api.dhis2_base_url``;
* creates an ``admin`` user with a random password (printed once, and kept in
  ``<state_dir>/admin_password`` so a restart can print it again) and a ``demo`` submitter;
* loads sample mappings (codes OPD, ANC1, WEIGHT, OPEN → the simulator's data elements);
* syncs the org-unit hierarchy from the simulator at once (``/api/v2/orgunits`` and the admin
  app's org-unit names are filled without waiting for the sync schedule);
* prints a copy-and-paste example that submits data and then shows that very submission.
"""
from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger

from dhis2gw.runtime.lifecycle import stop_reactor

log = Logger()

SAMPLE_MAPPINGS = (  # code, data element, name (the simulator's HMIS monthly data set)
    ("OPD", "Re46C6Apebu", "OPD visits"),
    ("ANC1", "sHyMCqP5u8T", "ANC 1st visit"),
    ("WEIGHT", "fBMbkOwHQxP", "Average birth weight (kg)"),
    ("OPEN", "V7Jxd1RvrjG", "Facility open all month"),
)
DEMO_FACILITY = "ty5AJ6ZU5f7"  # Kaliro Town Health Centre III
DEMO_DATA_SET = "uFaVMlw4qxK"


class DemoSimulator(service.Service):
    """The DHIS2 simulator on the loopback port of ``api.dhis2_base_url``, for ``--demo``."""

    name = "demo-simulator"

    def __init__(self, reactor: Any, config: Any) -> None:
        from dhis2gw.sim import Metadata, Simulator, SimulatorServer

        self.reactor = reactor
        self.url = urlsplit(config.api.dhis2_base_url or "http://127.0.0.1:8099")
        if self.url.hostname not in ("127.0.0.1", "localhost"):
            raise SystemExit("dhis2gw: --demo needs api.dhis2_base_url on 127.0.0.1 (it starts the simulator there)")
        self.server = SimulatorServer(Simulator("2.40", clock=reactor, metadata=Metadata.load_default()), reactor)

    def startService(self) -> None:  # noqa: N802
        super().startService()
        port = self.url.port or 80

        def cannot_listen(failure: Any) -> None:
            stop_reactor(self.reactor, f"the demo DHIS2 simulator cannot listen on port {port}:"
                                       f" {failure.getErrorMessage()}")

        defer.Deferred.fromCoroutine(self.server.start(port)).addErrback(cannot_listen)

    def stopService(self) -> defer.Deferred[None]:  # noqa: N802
        super().stopService()
        return defer.Deferred.fromCoroutine(self.server.stop())


class DemoBootstrap(service.Service):
    """Creates the demo users and mappings once the gateway runs (`bootstrap`)."""

    name = "demo-bootstrap"

    def __init__(self, gateway: Any) -> None:
        self.gateway = gateway

    def startService(self) -> None:  # noqa: N802
        super().startService()
        defer.Deferred.fromCoroutine(bootstrap(self.gateway)).addErrback(
            lambda f: print(f"dhis2gw: demo bootstrap failed: {f.getErrorMessage()}", file=sys.stderr))


async def bootstrap(gateway: Any) -> None:
    """Create the demo users and mappings (once) and print how to use them."""
    from dhis2gw.dhis2.uids import generate_uid
    from dhis2gw.runtime.cli_users import create_user_command

    config = gateway.config
    db = gateway.db
    await db.started
    secret_file = Path(config.server.state_dir) / "admin_password"
    if secret_file.exists():
        password = secret_file.read_text().strip()
    else:
        password = secrets.token_urlsafe(12)
        try:
            await create_user_command(db, "admin", "admin", password)
            await create_user_command(db, "demo", "submitter", password)
        except ValueError:
            pass  # created by an earlier run whose password file was removed
        secret_file.write_text(password + "\n")
        os.chmod(secret_file, 0o600)
    from dhis2gw.storage.mappings import SHEET_COLUMNS, DuplicateMapping, MappingAdminStore

    store = MappingAdminStore(db)
    _, total = await store.list({}, None, 1, 0)
    if not total:
        for code, de, name in SAMPLE_MAPPINGS:
            row = {column: "" for column in SHEET_COLUMNS}
            row.update(code=code, what="de", name=name, dataelement=de)
            try:
                await store.create(generate_uid(), row)
            except DuplicateMapping:
                pass
        await gateway.mappings.cached.changed()
    sync = gateway.orgunit_sync
    if sync is not None:
        try:
            await sync.run("demo")
        except Exception as e:  # noqa: BLE001 - the demo still runs; the cron schedule syncs later
            log.warn("demo: the org-unit sync failed ({error}); it runs again on its schedule", error=e)
    listener = gateway.listener
    if listener is not None:
        await listener.listening  # the banner says "up" only once the API answers
    base = f"http://{config.server.host}:{config.server.port}"
    print(f"""
dhis2gw demo is up on {base}  (DHIS2 simulator: {config.api.dhis2_base_url})
  users: admin / {password}   demo (submitter) / {password}

  TOKEN=$(curl -s -X POST {base}/api/v2/users/getToken -H 'Content-Type: application/json' \\
          -d '{{"username":"demo","password":"{password}"}}' | python3 -c 'import json,sys;print(json.load(sys.stdin)["access_token"])')
  SID=$(curl -s -X POST {base}/api/v2/aggregate -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \\
       -d '{{"orgUnit":"{DEMO_FACILITY}","period":"202401","dataSet":"{DEMO_DATA_SET}","dataValues":{{"OPD":120,"ANC1":14}}}}' \\
       | python3 -c 'import json,sys;print(json.load(sys.stdin)["submission_id"])')
  curl -s {base}/api/v2/submissions/$SID -H "Authorization: Bearer $TOKEN"     # the submission just made
  curl -s {config.api.dhis2_base_url}/__sim/store     # what the simulated DHIS2 stored
""", flush=True)  # noqa: E501 - shell commands printed to be copied whole
