"""Hostile values for what issue 16 added: user permission fields, X-Forwarded-For, callback_url,
scoped submitters and destructive options — answered calmly, never a 5xx."""
from __future__ import annotations

import json

from tests.badinput.support import SQL_STRINGS, BadInputTestCase
from tests.badinput.test_bodies import AGGREGATE_DVS, AGGREGATE_SIMPLE, TRACKER

HOSTILE = SQL_STRINGS[:4] + ("\x00", "\ud800", "x" * 5000, "", " ")
ODD = (None, 1, -1, 1e308, True, [], {}, [[]], ["a"] * 2000, [None], [1], ["\x00"], ["ty5AJ6ZU5f7"] * 2)


class SecuritySettingsTests(BadInputTestCase):
    """The permission fields of /users, forwarded addresses, callback URLs and scoped ingest."""

    extra_environ = {**BadInputTestCase.extra_environ, "DHIS2GW_TRUSTED_PROXIES": "127.0.0.1"}

    async def _uid(self, username: str) -> str:
        row = await self.gateway.db.fetch_one("t", "SELECT uid FROM users WHERE username = %s", (username,))
        return str(row["uid"])

    async def test_permission_fields(self) -> None:
        """Every permission field with hostile and oddly typed values, on create and update."""
        uid = await self._uid("bad_submitter")
        for field in ("callback_allowed", "orgunit_scope", "dataset_scope", "may_delete"):
            for value in HOSTILE + ODD:
                body = json.dumps({field: value}).encode("utf-8", "surrogatepass")
                await self.send("PUT", f"/api/v2/users/{uid}", body)
                await self.send("PUT", f"/api/v2/users/{uid}", body, token="submitter")
                create = {"username": "u" + str(abs(hash((field, repr(value)))))[:10], "password": "Long-enough-pw-1",
                          field: value}
                await self.send("POST", "/api/v2/users", json.dumps(create).encode("utf-8", "surrogatepass"))
        await self.assert_no_problems()

    async def test_scoped_ingest_and_destructive_options(self) -> None:
        """A scoped submitter sends every ingest body with hostile org units and import options."""
        uid = await self._uid("bad_submitter")
        await self.send("PUT", f"/api/v2/users/{uid}", json.dumps(
            {"orgunit_scope": ["ty5AJ6ZU5f7"], "dataset_scope": ["uFaVMlw4qxK"]}).encode())
        for path, doc in (("/api/v2/aggregate", AGGREGATE_SIMPLE), ("/api/v2/aggregate", AGGREGATE_DVS),
                          ("/api/v2/tracker", TRACKER)):
            for text in HOSTILE:
                for key in ("orgUnit", "dataSet"):
                    variant = {**doc, key: text}
                    await self.send("POST", path, json.dumps(variant).encode("utf-8", "surrogatepass"),
                                    token="submitter")
            for query in ("importStrategy=DELETE", "importStrategy=delete", "skipAudit=true", "importStrategy=%00",
                          "importStrategy=" + "D" * 5000, "skipAudit=TRUE&importStrategy=DELETE"):
                await self.send("POST", f"{path}?{query}", json.dumps(doc).encode(), token="submitter")
        await self.assert_no_problems()

    async def test_forwarded_for_and_callback_url(self) -> None:
        """Garbage X-Forwarded-For from a trusted proxy on logins; hostile callback_url values."""
        # (a NUL in a header is answered by Twisted's HTTP parser itself: see test_giant_and_broken_headers)
        for value in ("", ",", "::::", "1.2.3.4, junk", "999.1.1.1", "a" * 4000, "1.2.3.4," * 500,
                      "[::1]", "fe80::1%eth0", "unknown"):
            await self.send("POST", "/api/v2/users/getToken",
                            json.dumps({"username": "nobody", "password": "wrong-password-1"}).encode(),
                            headers={"X-Forwarded-For": value.encode("latin-1", "replace").decode("latin-1")},
                            token=None)
        uid = await self._uid("bad_submitter")
        await self.send("PUT", f"/api/v2/users/{uid}", b'{"callback_allowed": true}')
        for url in HOSTILE + ("http://127.0.0.1:8700/x", "http://2130706433/", "file:///etc/passwd",
                              "http://[::1", "http://a:b@c/", "https://hooks.example.org.evil.example/",
                              "gopher://x", "http://" + "a" * 300 + ".example/"):
            for doc in (AGGREGATE_SIMPLE, AGGREGATE_DVS):
                await self.send("POST", "/api/v2/aggregate",
                                json.dumps({**doc, "callback_url": url}).encode("utf-8", "surrogatepass"),
                                token="submitter")
        await self.assert_no_problems()
