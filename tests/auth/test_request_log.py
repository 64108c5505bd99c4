"""The request log: redaction, the buffered writer and GET /requests."""
from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

from twisted.internet import reactor
from twisted.internet.task import Clock, deferLater
from twisted.trial.unittest import SynchronousTestCase, TestCase

from dhis2gw.api.request_log import RequestLogWriter, body_excerpt, redacted_path
from dhis2gw.storage.database import Database
from dhis2gw.storage.request_log import RequestLogStore
from tests.auth.harness import AuthApiTestCase
from tests.support.services import migrated_database


class RedactionTests(SynchronousTestCase):
    """Excerpts and paths never keep a secret."""

    def test_json_keys_are_redacted_at_any_depth(self) -> None:
        """Sensitive keys anywhere in a JSON body become ***; other values stay."""
        body = json.dumps({"username": "a", "password": "p1", "nested": [{"dhis2_password": "p2", "pat": "p3",
                                                                           "refresh_token": "p4", "keep": 1}],
                           "Old_Password": "p5", "note": "Bearer eyJhbGciOi.eyJzdWIiOi.sig12345"}).encode()
        excerpt = body_excerpt(body, b"application/json", 1000)
        parsed = json.loads(excerpt)
        self.assertEqual(parsed, {"username": "a", "password": "***", "Old_Password": "***", "note": "Bearer ***",
                                  "nested": [{"dhis2_password": "***", "pat": "***", "refresh_token": "***",
                                              "keep": 1}]})

    def test_truncated_and_form_bodies(self) -> None:
        """A body cut mid-secret, a non-JSON text body and a form body are scrubbed too; binary is summarised."""
        long_body = b'{"padding": "' + b"x" * 40 + b'", "password": "abcdefghijklmnopqrstuvwxyz"}'
        excerpt = body_excerpt(long_body + b"garbage", b"application/json", 70)
        self.assertNotIn("abcdefghijklmno"[:8], excerpt)
        self.assertLessEqual(len(excerpt), 70)
        self.assertNotIn("hunter22", body_excerpt(b"user=a&password=hunter22&x=1",
                                                  b"application/x-www-form-urlencoded", 100))
        self.assertEqual(body_excerpt(b"\x00\x01PK", b"application/vnd.ms-excel", 100),
                         "(4 bytes of application/vnd.ms-excel)")

    def test_query_secrets_are_removed_from_paths(self) -> None:
        """Sensitive query parameters keep their name but lose their value."""
        path = redacted_path(b"/api/v2/x?page=2&access_token=eyJabc.eyJdef.ghi&password=pw&q=ok")
        self.assertEqual(path, "/api/v2/x?page=2&access_token=***&password=***&q=ok")


def fake_request(path: bytes = b"/api/v2/x", code: int = 200, body: bytes = b"") -> Any:
    """The attributes the writer reads from a finished GatewayRequest."""
    import io

    return SimpleNamespace(
        route=None, principal=None, content=io.BytesIO(body), method=b"GET", uri=path, code=code, duration=0.0042,
        request_id="rid", error_code=None, received_bytes=len(body), getHeader=lambda name: None,
        getClientAddress=lambda: SimpleNamespace(host="127.0.0.1"))


class RequestLogWriterTests(TestCase):
    """Batching on the Clock, bounded memory and PostgreSQL outages."""

    def setUp(self) -> Any:
        self.db = Database(reactor, migrated_database(), size=1)
        self.db.startService()
        self.addCleanup(lambda: self.db.stopService() if self.db.running else None)
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        return self.db.started

    async def count(self) -> int:
        row = await self.db.fetch_one("t", "SELECT count(*) AS n FROM request_log")
        return int(row["n"])

    async def test_flushes_every_interval_and_on_batch_size(self) -> None:
        """Rows wait for the 0.2 s tick; a full batch goes at once; stopService flushes the rest."""
        writer = RequestLogWriter(self.clock, RequestLogStore(self.db), batch_size=10, flush_interval=0.2)
        writer.startService()
        for _ in range(3):
            writer.observe(fake_request())
        self.assertEqual(writer.stats()["buffered"], 3)
        self.clock.advance(0.2)
        await writer.flush()
        self.assertEqual((await self.count(), writer.written), (3, 3))
        for _ in range(10):  # reaching batch_size starts a flush without waiting for the tick
            writer.observe(fake_request())
        await writer.flush()
        self.assertEqual(await self.count(), 13)
        writer.observe(fake_request(b"/api/v2/last?password=x", 404))
        await writer.stopService()
        rows = await self.db.fetch("t", "SELECT path, status, duration_ms, remote_addr, endpoint, at FROM request_log"
                                        " ORDER BY id DESC LIMIT 1")
        self.assertEqual((rows[0]["path"], rows[0]["status"], rows[0]["remote_addr"], rows[0]["endpoint"]),
                         ("/api/v2/last?password=***", 404, "127.0.0.1", "(unmatched)"))
        self.assertAlmostEqual(rows[0]["duration_ms"], 4.2, places=3)
        self.assertEqual(rows[0]["at"].timestamp(), 1_700_000_000.2)

    async def test_outage_buffers_up_to_the_limit_and_counts_drops(self) -> None:
        """With PostgreSQL gone, observe never blocks, the buffer stops at max_buffer and drops are counted."""
        writer = RequestLogWriter(self.clock, RequestLogStore(self.db), batch_size=5, max_buffer=20)
        writer.startService()
        await self.db.stopService()
        for _ in range(30):
            writer.observe(fake_request())
        self.clock.advance(0.2)
        await writer.flush()
        stats = writer.stats()
        self.assertEqual((stats["buffered"], stats["dropped"], stats["written"]), (20, 10, 0))
        self.assertGreaterEqual(stats["failed_flushes"], 1)
        self.assertIn("not connected", stats["last_error"])
        self.assertFalse((await writer.check())["ok"])
        # PostgreSQL is back: the buffered rows are written on the next ticks
        self.db = Database(reactor, self.db.dsn, size=1)
        self.db.startService()
        await self.db.started
        writer.store = RequestLogStore(self.db)
        self.clock.advance(0.2)
        await writer.flush()
        self.assertEqual((await self.count(), writer.stats()["buffered"]), (20, 0))
        await writer.stopService()

    async def test_retention_deletes_old_rows_hourly(self) -> None:
        """Issue 16, F17: rows older than retention_days go (in batches), on the hourly loop of the Clock."""
        from dhis2gw.storage.request_log import RequestLogStore

        day = 86400
        for age_days in (100, 95, 91, 89, 1):
            await self.db.execute("t", "INSERT INTO request_log (at, method, endpoint, path, status, duration_ms)"
                                  " VALUES (to_timestamp(%s), 'GET', '/x', '/x', 200, 1)",
                                  (self.clock.seconds() - age_days * day,))
        writer = RequestLogWriter(self.clock, RequestLogStore(self.db), retention_days=90)
        writer.startService()
        self.addCleanup(writer.stopService)
        self.assertEqual(await writer.purge(batch=2), 3)
        self.assertEqual(await self.count(), 2)
        self.clock.advance(2 * day)  # the 89-day-old row is now 91 days old: the hourly loop removes it
        for _ in range(50):
            if await self.count() == 1:
                break
            await deferLater(reactor, 0.05, lambda: None)
        self.assertEqual(await self.count(), 1)

    async def test_disabled_writer_records_nothing(self) -> None:
        """enabled=False: observe is a no-op."""
        writer = RequestLogWriter(self.clock, RequestLogStore(self.db), enabled=False)
        writer.observe(fake_request())
        self.assertEqual(writer.stats()["buffered"], 0)


class RequestsApiTests(AuthApiTestCase):
    """Rows written through the real site, read back with GET /requests."""

    async def test_rows_describe_requests_and_filters_work(self) -> None:
        """Each request is one row: endpoint template, user, status, error code, redacted excerpt."""
        ops = await self.make_user("ops", "operator", "Ops-Password-1")
        await self.call("POST", "/users/getToken", {"username": "root-admin", "password": "Wrong-Password-1"})
        await self.call("GET", f"/users/{ops['uid']}", headers=self.bearer(self.admin))
        await self.call("GET", "/no/such/thing")
        await self.writer.flush()
        status, body, _ = await self.call("GET", "/requests?page_size=10", headers=self.bearer(ops))
        self.assertEqual(status, 200, body)
        self.assertEqual(body["total"], 3)
        by_endpoint = {r["endpoint"]: r for r in body["items"]}
        login = by_endpoint["/api/v2/users/getToken"]
        self.assertEqual((login["status"], login["error_code"], login["method"], login["user_id"]),
                         (401, "invalid_credentials", "POST", None))
        self.assertEqual(json.loads(login["body_excerpt"]), {"username": "root-admin", "password": "***"})
        read = by_endpoint["/api/v2/users/<uid>"]
        self.assertEqual((read["username"], read["path"], read["status"], read["remote_addr"]),
                         ("root-admin", f"/api/v2/users/{ops['uid']}", 200, "127.0.0.1"))
        self.assertEqual(by_endpoint["(unmatched)"]["status"], 404)
        await self.writer.flush()  # the GET /requests itself
        _, body, _ = await self.call("GET", "/requests?status=4xx", headers=self.bearer(ops))
        self.assertEqual(sorted(r["status"] for r in body["items"]), [401, 404])
        _, body, _ = await self.call("GET", "/requests?user=ops&endpoint=/api/v2/requests", headers=self.bearer(ops))
        self.assertEqual([r["endpoint"] for r in body["items"]], ["/api/v2/requests"])
        _, body, _ = await self.call("GET", "/requests?from=2100-01-01", headers=self.bearer(ops))
        self.assertEqual(body["total"], 0)
        status, body, _ = await self.call("GET", "/requests?from=yesterday", headers=self.bearer(ops))
        self.assertEqual((status, body["error"]["details"]["parameter"]), (400, "from"))
