"""Issue 16, F1 through the HTTP API: who may name a callback_url, and who reads the receiver's answer."""
from __future__ import annotations

from typing import Any

from dhis2gw.dhis2.uids import generate_uid
from dhis2gw.storage.submissions import NewSubmission
from tests.support.gateway import GatewayTestCase

BODY = {"orgUnit": "DiszpKrYNg8", "period": "202401", "dataValues": {"OPD": 1},
        "callback_url": "http://127.0.0.1:8700/internal/secrets"}


class CallbackPermissionTests(GatewayTestCase):
    """``callback_url`` is a per-user permission; the answer of a receiver is for operators."""

    async def _user_id(self, username: str) -> int:
        row = await self.gateway.db.fetch_one("test.uid", "SELECT id, uid FROM users WHERE username = %s", (username,))
        return int(row["id"])

    async def test_callback_url_needs_the_permission(self) -> None:
        """A submitter without ``callback_allowed`` gets 403 naming the field; an admin grants it with PUT."""
        token = await self.user_token("sub-cb", "submitter")
        code, body = await self.request_json("POST", "/api/v2/aggregate", BODY, token)
        self.assertEqual((code, body["error"]["code"]), (403, "callback_not_allowed"))
        self.assertEqual(body["error"]["details"], {"field": "callback_url"})
        admin = await self.user_token("admin-cb", "admin")
        uid = (await self.gateway.db.fetch_one("test.uid", "SELECT uid FROM users WHERE username = 'sub-cb'"))["uid"]
        code, user = await self.request_json("PUT", f"/api/v2/users/{uid}", {"callback_allowed": True}, admin)
        self.assertEqual((code, user["callback_allowed"]), (200, True))
        code, body = await self.request_json("POST", "/api/v2/aggregate", BODY, token)
        # past the permission; the URL itself is refused at once (loopback), not silently later
        self.assertEqual((code, body["error"]["code"]), (422, "callback_url_refused"), body)
        self.assertIn("127.0.0.1 is a loopback address", body["error"]["message"])
        for url in ("http://2130706433:8700/", "http://169.254.169.254/latest/meta-data/", "http://0.0.0.0:8700/",
                    "https://hooks.example.org.evil.example/", 42):
            code, body = await self.request_json("POST", "/api/v2/aggregate", {**BODY, "callback_url": url}, token)
            self.assertEqual((code, body["error"]["code"]), (422, "callback_url_refused"), url)

    async def test_submitter_does_not_read_the_receiver_answer(self) -> None:
        """GET /submissions/{id} of a callback: status for the submitter, the answer only for operators."""
        token = await self.user_token("sub-read", "submitter")
        operator = await self.user_token("op-read", "operator")
        submitter_id = await self._user_id("sub-read")
        created = await self.gateway.store.create(NewSubmission(
            uid=generate_uid(), kind="callback", destination="_callbacks", submitter_id=submitter_id,
            endpoint="/api/v2/submissions/1", payload={"callback_url": "https://hooks.example.org/cb"},
            dhis2_payload={"event": "submission.final"}, import_params={}, value_count=0))
        sid = created.row["id"]
        answer: Any = {"receiver_status": 200, "excerpt": "root:x:0:0:internal secret"}
        await self.gateway.db.execute(
            "test.answer", "UPDATE submissions SET status = 'rejected', response = %s::jsonb,"
            " error = 'callback receiver answered 400: root:x:0:0' WHERE id = %s",
            (__import__("json").dumps(answer), sid))
        await self.gateway.db.execute(
            "test.event", "INSERT INTO submission_events (submission_id, event, status, detail)"
            " VALUES (%s, 'rejected', 'rejected', 'root:x:0:0')", (sid,))
        code, seen = await self.request_json("GET", f"/api/v2/submissions/{sid}", token=token)
        self.assertEqual((code, seen["status"]), (200, "rejected"))
        self.assertNotIn("root:x", repr(seen))
        code, seen = await self.request_json("GET", f"/api/v2/submissions/{sid}", token=operator)
        self.assertEqual(code, 200)
        self.assertEqual(seen["response"], answer)
