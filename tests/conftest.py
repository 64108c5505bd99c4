"""Test-suite wide settings and the suite-wide secrets scan.

Keep reactor-installing imports (klein, txredisapi, apscheduler.schedulers.twisted) out of this
file: see stack-notes pitfall 1.

Secrets scan: every twisted.logger event of the whole run, and every ``request_log`` row of every
test database (scanned just before the database is dropped), is checked for anything shaped like
a secret — password hashes, JWTs, API tokens — and for the DHIS2 and test passwords the suites
use. A finding fails the run. (tests/auth also scans every response body of its requests.)
"""
from __future__ import annotations

from typing import Any

import pytest

from tests.support import services
from tests.support.secrets_scan import SecretsScanner

SCANNER = SecretsScanner()
# (The simulator's DHIS2 password, "district", is not listed: it is also the name of the /orgunits
# filter, so every request using that filter would look like a leak. tests/auth checks DHIS2
# credentials with a distinctive password.)
for _secret, _kind in (("a-Long-enough-pass-1", "test password"), ("Operations-Admin-2024!", "test password"),
                       ("Bench-Password-123", "test password"), ("matrix-Password-123", "test password")):
    SCANNER.add_secret(_secret, _kind)


def _scan_request_log(dsn: str) -> None:
    import psycopg2
    import psycopg2.extras

    try:
        conn = psycopg2.connect(dsn)
    except psycopg2.Error:
        return
    try:
        with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.execute("SELECT to_regclass('request_log') AS t")
            if cur.fetchone()["t"] is None:
                return
            cur.execute("SELECT * FROM request_log")
            SCANNER.check_rows(dsn.rsplit("/", 1)[-1] + " request_log", cur.fetchall())
    finally:
        conn.close()


def pytest_configure(config: Any) -> None:
    config._dhis2gw_stop_capture = SCANNER.capture_logs()
    services.before_drop.append(_scan_request_log)


def pytest_sessionfinish(session: Any, exitstatus: int) -> None:
    for dsn in list(services.created_dsns()):
        _scan_request_log(dsn)
    SCANNER.check_log_lines()
    if SCANNER.findings:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        lines = sorted(set(SCANNER.findings))
        if reporter is not None:
            reporter.write_line(f"SECRETS SCAN: {len(lines)} finding(s):", red=True)
            for line in lines[:50]:
                reporter.write_line("  " + line, red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
