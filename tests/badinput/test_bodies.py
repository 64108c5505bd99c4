"""Hostile request bodies and headers: oversized, deeply nested, invalid UTF-8, NUL characters,
SQL-looking strings in every JSON field of the ingest bodies, wrong content types and methods,
giant headers."""
from __future__ import annotations

import copy
import json
import socket
from collections.abc import Iterator
from typing import Any

from tests.badinput.support import SQL_STRINGS, BadInputTestCase

AGGREGATE_SIMPLE = {"orgUnit": "ty5AJ6ZU5f7", "period": "202401", "dataSet": "uFaVMlw4qxK",
                    "orgUnitName": "A clinic", "attributeOptionCombo": "HllvX50cXC0", "completeDate": "2024-02-01",
                    "comment": "fine", "dataValues": {"BAD1": 12, "BAD2": "7"}}
AGGREGATE_DVS = {"dataSet": "uFaVMlw4qxK", "period": "202401", "orgUnit": "ty5AJ6ZU5f7",
                 "dataValues": [{"dataElement": "Re46C6Apebu", "categoryOptionCombo": "HllvX50cXC0", "value": "12",
                                 "comment": "c"}]}
TRACKER = {"trackedEntities": [{
    "trackedEntityType": "wUDUIqHvKBT", "orgUnit": "ty5AJ6ZU5f7",
    "attributes": [{"attribute": "Nx35aDI8hlO", "value": "Jane"}],
    "enrollments": [{"program": "x77Cvs1U2W8", "orgUnit": "ty5AJ6ZU5f7", "enrolledAt": "2024-03-01",
                     "events": [{"programStage": "mfldQTsPucY", "orgUnit": "ty5AJ6ZU5f7", "occurredAt": "2024-03-01",
                                 "dataValues": [{"dataElement": "EUBJhFXsCXe", "value": "2900"}]}]}]}]}
INGEST = (("/api/v2/aggregate", AGGREGATE_SIMPLE), ("/api/v2/aggregate", AGGREGATE_DVS),
          ("/api/v2/tracker", TRACKER), ("/api/v2/submissions/aggregate", AGGREGATE_SIMPLE))


def variants(doc: Any, replacement: Any) -> Iterator[Any]:
    """Copies of ``doc`` with one leaf (or one object key) replaced by ``replacement`` at a time."""
    if isinstance(doc, dict):
        for key in list(doc):
            for sub in variants(doc[key], replacement):
                out = copy.copy(doc)
                out[key] = sub
                yield out
            if isinstance(replacement, str):
                yield {(replacement if k == key else k): v for k, v in doc.items()}
    elif isinstance(doc, list):
        for i, item in enumerate(doc):
            for sub in variants(item, replacement):
                out = list(doc)
                out[i] = sub
                yield out
    else:
        yield replacement


class BodyTests(BadInputTestCase):
    """Bodies a client should never send, and the gateway must answer calmly."""

    async def test_sql_and_nul_in_every_ingest_field(self) -> None:
        """Each JSON field (value and key) of each ingest body replaced by hostile strings, one at a time."""
        await self.send("POST", "/api/v2/mappings", b'{"code": "BAD1", "what": "de", "dataelement": "Re46C6Apebu",'
                        b' "dataset": "uFaVMlw4qxK", "category_option_combo": "HllvX50cXC0"}')
        for path, doc in INGEST:
            for text in SQL_STRINGS[:4] + ("\x00", "a\x00b", "\ud800", "x" * 20000):
                for variant in variants(doc, text):
                    await self.send("POST", path, json.dumps(variant).encode(), token="submitter")
            for odd in (None, 1e308, -1, True, [], {}, [[[[]]]]):
                for variant in variants(doc, odd):
                    await self.send("POST", path, json.dumps(variant).encode(), token="submitter")
        await self.assert_no_problems()
        rows = await self.gateway.db.fetch("t", "SELECT count(*) AS n FROM submissions WHERE payload::text LIKE"
                                           " '%DROP TABLE%'")
        self.assertGreaterEqual(rows[0]["n"], 0)  # stored as data, if at all; the table is intact

    async def test_malformed_json_documents(self) -> None:
        """Deep nesting (100,000 '['), invalid UTF-8, NUL bytes, truncation, odd top-level values."""
        bodies = [b"[" * 100_000, b"{\"a\":" * 50_000, b"[" * 100_000 + b"]" * 100_000, b"\xff\xfe\x00{",
                  b'{"orgUnit": "\xc3\x28"}', b'{"orgUnit": "a\x00b"}', b"\x00" * 1000, b'{"orgUnit": ',
                  b"", b"null", b"42", b'"a string"', b"[]", b'{"__proto__": {}}', b"NaN", b"Infinity",
                  b'{"a": 1e999999}', b'{"a": ' + b"9" * 100_000 + b"}", b'{"a": "\\ud800"}',
                  b'{"dataValues": {"' + b"k" * 100_000 + b'": 1}}', b"\xef\xbb\xbf{}"]
        routes = [r for r in self.gateway.router.routes if r.spec.body_schema is not None]
        self.assertGreater(len(routes), 8)
        for route in routes:
            path = route.full_path.replace("<uid>", "AbCdEfGhIjK").replace("<kind>", "aggregate")
            for body in bodies:
                await self.send(route.spec.method, path, body, token="admin")
        await self.assert_no_problems()

    async def test_numbers_json_does_not_have(self) -> None:
        """NaN/Infinity (not JSON) and numbers overflowing to infinity: a 400 naming the field, nothing stored."""
        cases = ((b'{"orgUnit": "ty5AJ6ZU5f7", "period": "202401", "dataValues": {"A": NaN}}', "invalid_json", None),
                 (b'{"orgUnit": "ty5AJ6ZU5f7", "period": "202401", "dataValues": {"A": -Infinity}}', "invalid_json",
                  None),
                 (b'{"orgUnit": "ty5AJ6ZU5f7", "period": "202401", "dataValues": {"A": 1e999}}', "invalid_number",
                  "dataValues/A"),
                 (b'{"orgUnit": "ty5AJ6ZU5f7", "period": "202401", "dataValues": {"A": 1}, "x": [0, -2e400]}',
                  "invalid_number", "x/1"))
        for body, code, field in cases:
            status, raw = await self.send("POST", "/api/v2/aggregate", body, token="submitter")
            error = json.loads(raw)["error"]
            self.assertEqual((status, error["code"]), (400, code), raw)
            self.assertEqual(error.get("details", {}).get("field"), field, raw)
        rows = await self.gateway.db.fetch("t", "SELECT count(*) AS n FROM submissions")
        self.assertEqual(rows[0]["n"], 0)
        await self.assert_no_problems()

    async def test_oversized_bodies(self) -> None:
        """Above the 1 MiB limit: 413 in the JSON envelope, declared or chunked, on every body route."""
        big = b'{"orgUnit": "' + b"x" * (2 * 1024 * 1024) + b'"}'
        for path in ("/api/v2/aggregate", "/api/v2/tracker", "/api/v2/mappings", "/api/v2/users/getToken",
                     "/api/v2/mappings/import/csv"):
            code, raw = await self.send("POST", path, big, token="admin")
            self.assertEqual(code, 413, raw[:200])
            self.assertEqual(json.loads(raw)["error"]["code"], "payload_too_large")
        await self.assert_no_problems()

    async def test_wrong_content_types_and_methods(self) -> None:
        """Every route given the wrong content type, and every path given methods it does not take."""
        valid = json.dumps(AGGREGATE_DVS).encode()
        for ctype in ("text/plain", "application/xml", "multipart/form-data; boundary=x",
                      "application/x-www-form-urlencoded", "application/json; charset=latin-1", ""):
            for path in ("/api/v2/aggregate", "/api/v2/tracker", "/api/v2/mappings", "/api/v2/mappings/import/csv",
                         "/api/v2/mappings/import/excel", "/api/v2/users/getToken"):
                try:
                    await self.send("POST", path, valid, content_type=ctype or None, label=f" [{ctype!r}]")
                except ValueError:
                    continue  # the client library refuses to send a header with CR/LF/NUL itself
        paths = sorted({r.full_path for r in self.gateway.router.routes if ":path" not in r.full_path})
        for path in paths:
            concrete = path.replace("<int:", "<").replace("<uid>", "AbCdEfGhIjK")
            concrete = concrete.replace("<submission_id>", "1").replace("<token_id>", "1")
            for part in ("<kind>", "<destination>", "<task_id>", "<job_id>", "<page>"):
                concrete = concrete.replace(part, "x")
            for method in ("PATCH", "OPTIONS", "TRACE", "PUT", "DELETE", "POST"):
                await self.send(method, concrete, b"{}")
        await self.assert_no_problems()

    async def test_giant_and_broken_headers(self) -> None:
        """Huge and malformed headers (raw socket): no 5xx, the gateway still serves afterwards."""
        port = int(self.base.rsplit(":", 1)[1])
        requests = [
            b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n",
            b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(600)) + b"\r\n",
            b"GET /api/v2/logs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + b"e" * 20_000 + b"\r\n\r\n",
            b"GET /api/v2/logs HTTP/1.1\r\nHost: x\r\nAuthorization: Basic \xff\xfe\x00\r\n\r\n",
            b"GET /api/v2/logs HTTP/1.1\r\nHost: \xff\xfe\r\nAuthorization: Bearer x\r\n\r\n",
            b"POST /api/v2/aggregate HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
            b"POST /api/v2/aggregate HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n",
            b"POST /api/v2/aggregate HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\n",
            b"GET /\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GARBAGE\r\n\r\n",
            # Twisted's HTTP parser itself answers these with a bare 400 (before any gateway code runs).
            b"POST /api/v2/aggregate HTTP/1.1\r\nHost: x\r\nContent-Type: \x00\r\nContent-Length: 2\r\n\r\n{}",
            b"POST /api/v2/aggregate HTTP/1.1\r\nHost: x\r\nContent-Type: a\rb\r\nContent-Length: 2\r\n\r\n{}",
            b"GET /health HTTP/1.1\r\nHost: x\r\nX-Request-ID: " + b"\xff" * 300 + b"\r\n\r\n",
        ]
        from twisted.internet.threads import deferToThread

        def exchange(raw: bytes) -> bytes:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(raw)
                chunks = []
                try:
                    while True:
                        data = sock.recv(65536)
                        if not data:
                            break
                        chunks.append(data)
                        if b"\r\n\r\n" in b"".join(chunks) and not raw.startswith(b"POST"):
                            break
                except (TimeoutError, ConnectionResetError):
                    pass
                return b"".join(chunks)

        for raw in requests:
            answer = await deferToThread(exchange, raw)
            head, _, body = answer.partition(b"\r\n\r\n")
            status = int(head.split(b" ")[1]) if head.startswith(b"HTTP/1.") else 0
            self.judge(f"raw {raw[:60]!r}", status if status >= 500 else 0, body, "")
            if status >= 500 or b"Traceback" in body:
                self.problems.append(f"raw {raw[:60]!r} → {head[:100]!r} {body[:200]!r}")
        await self.assert_no_problems()
