"""A whole gateway (with an in-process simulator) and the verdict every bad request must pass.

``BadInputTestCase.send`` sends raw bytes and records a problem, instead of failing at once, for
every answer with status 5xx, a traceback in the body, or an error outside the JSON envelope
``{"error": {"code", "message"}}``; ``assert_no_problems`` fails with all of them listed. Each
test ends by checking the gateway is still healthy (``/health`` 200) and the tables are still
there (``SELECT count(*)`` on the tables an injection would target).
"""
from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import treq
from twisted.trial.unittest import SkipTest  # noqa: F401  (re-exported for the test modules)

from tests.support.gateway import GatewayTestCase

SQL_STRINGS = ("'; DROP TABLE submissions; --", "%' OR 1=1 --", "$$", "\\", "1; SELECT pg_sleep(5)--",
               "\" OR \"\"=\"", "') OR ('a'='a")
ODD_STRINGS = ("\x00", "a\x00b", "\ud800" , "é" * 3, "x" * 5000, "-1", "99999999999999999999999", "1e309", "[]",
               "{}", "null")
TABLES = ("submissions", "submission_events", "users", "dhis2_mappings", "request_log")


def query_value(text: str) -> str:
    """``text`` percent-encoded for a query string (lone surrogates as their raw UTF-8-ish bytes)."""
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


class BadInputTestCase(GatewayTestCase):
    """A whole gateway with the simulator as DHIS2; helpers to send and judge hostile requests."""

    timeout = 300
    with_simulator = True
    extra_environ = {"DHIS2GW_MAX_BODY_BYTES": "1MiB"}

    async def start_gateway(self) -> Any:
        gateway = await super().start_gateway()
        self.problems: list[str] = []
        self.sent = 0
        self.admin = await self.user_token("bad_admin", "admin")
        self.submitter = await self.user_token("bad_submitter", "submitter")
        return gateway

    async def send(self, method: str, path: str, data: bytes | None = None,
                   headers: dict[str, str] | None = None, token: str | None = "admin",
                   content_type: str | None = "application/json", label: str = "") -> tuple[int, bytes]:
        """Send one request; judge the answer (recorded in ``self.problems``); return (status, body)."""
        sent: dict[str, str] = {}
        if content_type:
            sent["Content-Type"] = content_type
        if token:
            sent["Authorization"] = "Bearer " + (self.admin if token == "admin" else
                                                 self.submitter if token == "submitter" else token)
        sent.update(headers or {})
        response = await treq.request(method, self.url(path).encode("ascii", "surrogateescape")
                                      if isinstance(path, str) else path, headers=sent, data=data,
                                      persistent=False)
        raw = await response.content()
        ctype = (response.headers.getRawHeaders("content-type") or [""])[0]
        self.judge(f"{method} {path[:160]}{label}", response.code, raw, ctype)
        return response.code, raw

    def judge(self, what: str, code: int, raw: bytes, ctype: str) -> None:
        """Record why this answer is not acceptable, if it is not."""
        self.sent += 1
        text = raw.decode("utf-8", "replace")
        if code >= 500:
            self.problems.append(f"{what} → {code}: {text[:300]}")
        if "Traceback" in text or 'File "' in text:
            self.problems.append(f"{what} → traceback in body: {text[:300]}")
        if code >= 400:
            try:
                error = json.loads(raw)["error"]
                assert isinstance(error["code"], str) and isinstance(error["message"], str)
            except (ValueError, KeyError, TypeError, AssertionError):
                self.problems.append(f"{what} → {code} not in the JSON error envelope ({ctype}): {text[:200]}")

    async def assert_no_problems(self) -> None:
        """Fail listing every bad answer; then check health and the tables."""
        self.assertGreater(self.sent, 0)
        self.assertEqual(self.problems, [], f"{len(self.problems)} bad answers of {self.sent}:\n"
                         + "\n".join(self.problems[:40]))
        response = await treq.get(self.url("/health"), persistent=False)
        body = await response.json()
        self.assertEqual(response.code, 200, body)
        for table in TABLES:
            rows = await self.gateway.db.fetch("badinput.count", f"SELECT count(*) AS n FROM {table}")
            self.assertGreaterEqual(rows[0]["n"], 0)
