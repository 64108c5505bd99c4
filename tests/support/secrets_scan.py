"""A scanner that proves no secret leaks into responses, log lines or request_log rows.

A suite creates one ``SecretsScanner``, registers the literal secrets it uses (passwords, the
JWT secret, DHIS2 credentials), captures twisted.logger output with ``capture_logs()``, feeds
it every response body and, at the end, the ``request_log`` rows. Besides the literals it
looks for anything shaped like a secret: argon2/bcrypt hashes, JWTs and ``dgw_`` API tokens.
Responses that legitimately hand out a credential (``getToken``, ``refreshToken``, API-token
creation) are checked with those fields removed.
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Any

from twisted.logger import ILogObserver, eventAsText, globalLogPublisher
from zope.interface import provider

SHAPES = {
    "argon2 hash": re.compile(r"\$argon2(?:id|i|d)\$"),
    "bcrypt hash": re.compile(r"\$2[aby]\$\d\d\$"),
    "JWT": re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]+"),
    "API token": re.compile(r"dgw_[A-Za-z0-9_-]{20,}"),
}
CREDENTIAL_FIELDS = ("access_token", "refresh_token", "token")


class SecretsScanner:
    """Collects findings: where a secret was seen and what kind it was (never the secret)."""

    def __init__(self) -> None:
        self.literals: dict[str, str] = {}
        self.findings: list[str] = []
        self.log_lines: list[str] = []
        self.scanned = {"responses": 0, "log lines": 0, "request_log rows": 0}

    def add_secret(self, value: str, kind: str) -> None:
        """Treat ``value`` as a secret wherever it appears (ignored when too short to be telling)."""
        if value and len(value) >= 8:
            self.literals[value] = kind

    def capture_logs(self) -> Callable[[], None]:
        """Start capturing every twisted.logger event as text; returns the function that stops it."""
        @provider(ILogObserver)
        def observe(event: dict[str, Any]) -> None:
            text = eventAsText(event, includeTimestamp=False, includeSystem=False)
            # failures and unformatted keys too: a secret passed as a field but not formatted still leaks
            extra = " ".join(repr(v) for k, v in event.items()
                             if not k.startswith("log_") and isinstance(v, (str, bytes, dict, list, tuple)))
            self.log_lines.append(text + " " + extra)

        globalLogPublisher.addObserver(observe)
        return lambda: globalLogPublisher.removeObserver(observe)

    def check_text(self, where: str, text: str) -> None:
        """Record a finding for every secret literal or secret shape in ``text``."""
        for kind, pattern in SHAPES.items():
            if pattern.search(text):
                self.findings.append(f"{where}: contains a {kind}")
        for value, kind in self.literals.items():
            if value in text:
                self.findings.append(f"{where}: contains the {kind}")

    def check_response(self, where: str, body: bytes, issues_credentials: bool = False) -> None:
        """Scan a response body; with ``issues_credentials`` its top-level token fields are exempt."""
        self.scanned["responses"] += 1
        text = body.decode("utf-8", errors="replace")
        if issues_credentials:
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = None
            if isinstance(parsed, dict):
                text = json.dumps({k: v for k, v in parsed.items() if k not in CREDENTIAL_FIELDS})
        self.check_text(where, text)

    def check_log_lines(self) -> None:
        """Scan every captured log line."""
        for i, line in enumerate(self.log_lines):
            self.scanned["log lines"] += 1
            self.check_text(f"log line {i}", line)

    def check_rows(self, where: str, rows: Iterable[dict[str, Any]]) -> None:
        """Scan database rows (e.g. every request_log row)."""
        for row in rows:
            self.scanned["request_log rows"] += 1
            self.check_text(f"{where} id={row.get('id')}", json.dumps(row, default=str))
