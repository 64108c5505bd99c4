"""Property-based fuzzing of the API from its own /openapi.json (schemathesis).

The gateway runs in this process on a real port; schemathesis (CLI, ``st run``) runs in a worker
thread so the reactor keeps serving. Valid admin credentials are sent with every request.
Checks: no 5xx, documented status codes, documented content types, and bodies matching the
documented response schemas. The example count per operation is bounded (``DHIS2GW_FUZZ_EXAMPLES``,
default 12). Reports land in ``test-output/fuzz/``.

``test_operations_api`` covers this feature's operations (tags logs, queue, docs, health);
``test_whole_api`` covers every documented operation of every feature.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.threads import deferToThreadPool

from tests.operations.support import OperationsTestCase
from tests.support.services import ROOT

FUZZ_EXAMPLES = int(os.environ.get("DHIS2GW_FUZZ_EXAMPLES", "12"))
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
OUTPUT = ROOT / "test-output" / "fuzz"


class OpenApiFuzzTests(OperationsTestCase):
    """schemathesis against /openapi.json, with the simulator as DHIS2 (the fuzzer tests bad input,
    not a DHIS2 outage: routes that read DHIS2 must find one)."""

    timeout = 900
    with_simulator = True
    extra_environ = {k: v for k, v in OperationsTestCase.extra_environ.items() if not k.startswith("dhis2_")}

    async def fuzz(self, name: str, include_tags: str | None = None) -> tuple[int, str]:
        await self.gateway.db.execute(
            "test.users", "INSERT INTO users (id, uid, username, role, password_hash) VALUES"
            " (1, 'Admin000001', 'fuzz_admin', 'admin', 'x') ON CONFLICT DO NOTHING")
        OUTPUT.mkdir(parents=True, exist_ok=True)
        st = Path(sys.executable).with_name("st")
        command = [str(st), "run", self.url("/openapi.json"), "--checks", CHECKS,
                   "--phases", "examples,fuzzing", "--max-examples", str(FUZZ_EXAMPLES), "--seed", "20240301",
                   "--generation-database", "none", "--workers", "1", "--no-color",
                   "--request-timeout", "20", "--exclude-deprecated",
                   "-H", f"Authorization: {self.auth_header}",
                   "--report", "junit", "--report-junit-path", str(OUTPUT / f"{name}.junit.xml")]
        if include_tags:
            command += ["--include-tag-regex", include_tags]
        result = await deferToThreadPool(
            reactor, reactor.getThreadPool(),
            lambda: subprocess.run(command, capture_output=True, text=True, timeout=800))
        (OUTPUT / f"{name}.txt").write_text(result.stdout + result.stderr, encoding="utf-8")
        # Fuzzed NUL characters make the request-log writer (auth feature) drop its batch and log
        # the ValueError; that is its own reported bug, not an API answer, so it is set aside here.
        dropped = self.flushLoggedErrors(ValueError)
        if dropped:
            (OUTPUT / f"{name}.request-log-errors.txt").write_text(
                "\n".join(str(f.value) for f in dropped), encoding="utf-8")
        return result.returncode, result.stdout + result.stderr

    async def test_operations_api(self) -> None:
        """The logs, queue, docs and health operations: no 5xx, answers match the document."""
        code, output = await self.fuzz("operations", "^(logs|queue|docs|health)$")
        self.assertEqual(code, 0, output[-6000:])
        self.assertIn("GET /api/v2/logs", output)

    async def test_whole_api(self) -> None:
        """Every documented operation of every feature: no 5xx, answers match the document."""
        code, output = await self.fuzz("all")
        self.assertEqual(code, 0, output[-8000:])
