"""Issue 16, F10–F17: the low findings, each reproduced (F16 is in tests/auth/test_sessions.py,
F14's XLSX case in tests/mapping/test_sheet_process.py)."""
from __future__ import annotations

import base64
import json
from typing import Any

import treq
from twisted.internet import reactor
from twisted.trial.unittest import SynchronousTestCase, TestCase

from dhis2gw.api.request_log import body_excerpt, redacted_path
from dhis2gw.api.routing import Call, Router, route
from dhis2gw.api.site import GatewaySite, printable
from dhis2gw.errors import ApiError


class RedactionTests(SynchronousTestCase):
    """F10: what the request log and the access log keep."""

    def test_non_json_bodies_and_more_names(self) -> None:
        """A Python-style dict, pwd/pass fields and ?pwd= lose their values."""
        for raw in (b"{'password': 'hunter2-secret'}", b'{"pwd": "hunter2-secret"}', b"user=a&pass=hunter2-secret",
                    b"pwd=hunter2-secret;x=1", b'{"passphrase":"hunter2-secret"}'):
            excerpt = body_excerpt(raw, b"text/plain", 500)
            self.assertNotIn("hunter2", excerpt or "", raw)
        self.assertNotIn("hunter2", redacted_path(b"/api/v2/x?pwd=hunter2&page=1&pass=hunter2"))
        self.assertIn("page=1", redacted_path(b"/api/v2/x?pwd=hunter2&page=1"))

    def test_access_log_line_is_redacted(self) -> None:
        """With access_log on, the line carries the redacted query string, not the raw one."""
        site = GatewaySite(Router(None).app.resource(), max_body_bytes=1000, access_log=True)

        class Request:
            uri = b"/api/v2/users/getToken?password=hunter2&x=1"
            method, clientproto, code, sentLength = b"GET", b"HTTP/1.1", 200, 10  # noqa: N815 - twisted.web's name
            client_ip = "10.0.0.1"

            def getHeader(self, name: bytes) -> Any:  # noqa: N802
                return b"agent\r\nforged" if name == b"user-agent" else None

        line = site._logFormatter("[ts]", Request())
        self.assertNotIn("hunter2", line)
        self.assertNotIn("\r\n", line)


class LogInjectionTests(SynchronousTestCase):
    """F11: CR/LF/ANSI in a username cannot forge log lines."""

    def test_printable(self) -> None:
        forged = "bob\r\n2026-01-01T00:00:00 [auth#info] Login ok for admin\x1b[2J"
        text = printable(forged)
        self.assertNotIn("\n", text)
        self.assertNotIn("\r", text)
        self.assertNotIn("\x1b", text)
        self.assertTrue(text.startswith("bob\\r\\n"))


class CsvInjectionTests(SynchronousTestCase):
    """F12: exported CSV cells cannot be formulas; an export imports unchanged."""

    def test_formula_cells_are_quoted_and_round_trip(self) -> None:
        from dhis2gw.mapping.export import to_csv
        from dhis2gw.mapping.rows import COLUMNS
        from dhis2gw.mapping.sheets import read_csv

        row = dict.fromkeys(COLUMNS, "")
        row.update({"code": "=HYPERLINK(\"http://evil\")", "name": "+1", "description": "@SUM(A1)", "what": "de",
                    "dataset": "-2"})
        data = to_csv([row])
        self.assertIn(b"'=HYPERLINK", data)
        self.assertIn(b"'+1", data)
        self.assertIn(b"'@SUM", data)
        (_, back), = list(read_csv(data).rows)
        self.assertEqual({k: back[k] for k in ("code", "name", "description", "dataset")},
                         {k: row[k] for k in ("code", "name", "description", "dataset")})


class ConfigSecretsTests(SynchronousTestCase):
    """F13: check-config shows no DSN password in any spelling."""

    def test_check_config_and_errors(self) -> None:
        from dhis2gw.config import ConfigError, check_config

        env = {"DHIS2GW_JWT_SECRET": "x" * 40, "DHIS2GW_DB": "postgres://u@h/db?password=hunter2&sslmode=disable"}
        self.assertNotIn("hunter2", check_config(None, env))
        env["DHIS2GW_DB"] = "host=h password=hunter2 dbname=x"
        error = self.assertRaises(ConfigError, check_config, None, env)
        self.assertNotIn("hunter2", str(error))


class CursorTests(SynchronousTestCase):
    """F14: a forged cursor of the wrong type is a 400, not a database error."""

    def test_wrong_types(self) -> None:
        from dhis2gw.operations.filters import decode_cursor

        for packed in ({"s": "created_at", "d": True, "k": {"v": 5}, "i": 1},
                       {"s": "id", "d": True, "k": {"v": "x"}, "i": 1},
                       {"s": "id", "d": True, "k": {"v": 2 ** 70}, "i": 1},
                       {"s": "status", "d": True, "k": {"v": "queued"}, "i": 2 ** 70},
                       {"s": "attempts", "d": True, "k": {"v": True}, "i": 1}):
            raw = base64.urlsafe_b64encode(json.dumps(packed).encode()).decode()
            error = self.assertRaises(ApiError, decode_cursor, raw)
            self.assertEqual(error.status, 400)


class _Area:
    @route("GET", "/health", public=True)
    async def health(self, call: Call) -> dict[str, Any]:
        return {"ok": True}


class HeaderTests(TestCase):
    """F17: no Host-built redirect for '//', no version in Server, framing and CSP headers."""

    async def test_headers_and_double_slash(self) -> None:
        router = Router(None)
        router.mount("/api/v2", _Area())
        port = reactor.listenTCP(0, GatewaySite(router.resource(), max_body_bytes=1000), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        base = f"http://127.0.0.1:{port.getHost().port}"
        response = await treq.get(base + "/api/v2//health", headers={"Host": "evil.example"},
                                  allow_redirects=False, persistent=False)
        await response.content()
        self.assertEqual((response.code, response.headers.getRawHeaders("location")), (404, None))
        response = await treq.get(base + "/api/v2/health", persistent=False)
        await response.content()
        headers = response.headers
        self.assertEqual(headers.getRawHeaders("server"), ["dhis2gw"])
        self.assertEqual(headers.getRawHeaders("x-frame-options"), ["DENY"])
        self.assertIn("frame-ancestors 'none'", headers.getRawHeaders("content-security-policy")[0])
