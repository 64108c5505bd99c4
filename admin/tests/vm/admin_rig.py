"""A whole gateway (in-process, real PostgreSQL/Redis, in-process simulator as DHIS2) for the
view-model tests, plus helpers to submit data and wait for outcomes."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from twisted.internet import reactor, task

from dhis2gw_admin.model import AdminModel
from dhis2gw_admin.settings import SettingsStore
from tests.support.gateway import GatewayTestCase
from tests.support.processes import COC, DE_OPD, DS_HMIS, facility_uids

PASSWORD = "a-Long-enough-pass-1"


class AdminGatewayCase(GatewayTestCase):
    """GatewayTestCase with the simulator, no retries (a 500 fails at once), and an admin model."""

    with_simulator = True
    extra_environ = {"DHIS2GW_MAX_RETRIES": "0"}

    async def start_gateway(self) -> Any:
        gateway = await super().start_gateway()
        from dhis2gw.runtime.cli_users import create_user_command

        await create_user_command(self.gateway.db, "boss", "admin", PASSWORD)
        await create_user_command(self.gateway.db, "oper", "operator", PASSWORD)
        self.settings_path = Path(tempfile.mkdtemp(prefix="dhis2gw-admin-")) / "settings.json"
        self.copied: list[str] = []
        self.model = self.new_model()
        return gateway

    def new_model(self) -> AdminModel:
        model = AdminModel(reactor, self.base, SettingsStore(self.settings_path), clipboard=self.copied.append,
                           force_server=True)
        model.logs.poll_interval = model.mappings.poll_interval = 0.05
        self.addCleanup(model.close)
        return model

    async def logged_in(self, username: str = "boss") -> AdminModel:
        assert await self.model.login.login(PASSWORD, username=username), self.model.login.error
        return self.model

    async def submit(self, value: int, facility: int = 0, period: str = "202401") -> int:
        """Submit one native aggregate value as the admin; the submission id."""
        token = self.model.client.session.access_token  # type: ignore[union-attr]
        body = {"dataSet": DS_HMIS, "period": period, "orgUnit": facility_uids()[facility],
                "dataValues": [{"dataElement": DE_OPD, "categoryOptionCombo": COC, "value": str(value)}]}
        code, answer = await self.request_json("POST", "/api/v2/aggregate", body, token=token)
        assert code == 202, answer
        return int(answer["submission_id"])

    async def wait_status(self, submission_id: int, wanted: tuple[str, ...], timeout: float = 30.0) -> str:
        """Poll the gateway (through the API) until the submission is in one of ``wanted``."""
        status = ""
        for _ in range(int(timeout / 0.1)):
            status = (await self.model.api.get_log(submission_id))["status"]
            if status in wanted:
                return status
            await task.deferLater(reactor, 0.1, lambda: None)
        raise AssertionError(f"submission {submission_id} stayed {status}, wanted {wanted}")
