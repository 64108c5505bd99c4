"""A whole gateway for the operations tests, with credentials and a seeded submissions table.

Uses the real auth installer when it exists (an admin user created with ``create_user_command``,
Basic credentials); until then the router gets ``StaticAuthenticator`` (``Test admin``).
Docs, templates and static files are the repository's own directories. ``role`` is ``api`` by
default, so no dispatcher moves rows while a test looks at them.
"""
from __future__ import annotations

import base64
import json
from typing import Any

import treq
from twisted.internet import defer

from tests.support.gateway import GatewayTestCase
from tests.support.services import ROOT

ADMIN_PASSWORD = "Operations-Admin-2024!"


class OperationsTestCase(GatewayTestCase):
    """A gateway with a configured destination ``main`` (nothing listens there) and admin credentials."""

    role = "api"
    extra_environ = {
        "RTC_DOCS_DIR": str(ROOT / "docs"),
        "DHIS2GW_TEMPLATES_DIR": str(ROOT / "templates"),
        "DHIS2GW_STATIC_DIR": str(ROOT / "static"),
        "DISPATCHER2_TIMEZONE": "Africa/Kampala",
        "dhis2_base_url": "http://127.0.0.1:9",
        "dhis2_user": "admin",
        "dhis2_password": "district",
    }

    async def start_gateway(self) -> Any:
        gateway = await super().start_gateway()
        self.auth_header = await self._user_header("ops_admin", "admin")
        self.operator_header = await self._user_header("ops_operator", "operator")
        self.submitter_header = await self._user_header("ops_submitter", "submitter")
        return gateway

    async def _user_header(self, username: str, role: str) -> str:
        from dhis2gw.runtime.cli_users import create_user_command

        await create_user_command(self.gateway.db, username, role, ADMIN_PASSWORD)
        return "Basic " + base64.b64encode(f"{username}:{ADMIN_PASSWORD}".encode()).decode()

    def headers(self, who: str = "admin", **extra: str) -> dict[str, list[str]]:
        value = {"admin": self.auth_header, "operator": self.operator_header,
                 "submitter": self.submitter_header}[who]
        out = {"Authorization": [value]}
        out.update({k: [v] for k, v in extra.items()})
        return out

    async def call(self, method: str, path: str, body: Any | None = None, who: str = "admin",
                   headers: dict[str, str] | None = None) -> tuple[int, Any]:
        """Send a request; return (status, parsed JSON or raw bytes)."""
        kwargs: dict[str, Any] = {"headers": self.headers(who, **(headers or {})), "persistent": False}
        if body is not None:
            kwargs["data"] = json.dumps(body).encode()
            kwargs["headers"]["Content-Type"] = ["application/json"]
        response = await treq.request(method, self.url(path), **kwargs)
        raw = await response.content()
        ctype = (response.headers.getRawHeaders("content-type") or [""])[0]
        return response.code, (json.loads(raw) if ctype.startswith("application/json") else raw)

    async def sql(self, statement: str, params: Any = None) -> list[dict[str, Any]]:
        """Run SQL on the gateway's database (seeding and checks)."""
        return await self.gateway.db.fetch("test.sql", statement, params)

    async def wait_job(self, job_id: str) -> None:
        """Wait for a requeue job of this process to end."""
        d = self.gateway.requeue.running_jobs.get(job_id)
        if d is not None:
            waiter: defer.Deferred[Any] = defer.Deferred()
            d.addBoth(lambda r: (waiter.callback(None), r)[1])
            await waiter


async def seed_users(case: OperationsTestCase) -> dict[str, dict[str, Any]]:
    """Two submitters, alice and bob; returns their rows by username."""
    rows = await case.sql(
        "INSERT INTO users (uid, username, role, password_hash) VALUES"
        " ('Alice000001', 'alice', 'submitter', 'x'), ('BobBob00002', 'Bob', 'submitter', 'x')"
        " RETURNING id, uid, username")
    return {r["username"].lower(): r for r in rows}


def new_uid(n: int) -> str:
    """A deterministic 11-character uid."""
    return f"S{n:010d}"
