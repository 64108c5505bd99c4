"""Issue 16, F9: submitters limited to org-unit subtrees and data sets; deleting needs a permission."""
from __future__ import annotations

import json
from typing import Any

from tests.support.gateway import GatewayTestCase

ROOT, D1, D2 = "RootUnit001", "District001", "District002"
F1, F2 = "ty5AJ6ZU5f7", "a0BQ4umzjN4"  # facilities of the simulator's country (HMIS data set assigned)
DS1, DS2 = "uFaVMlw4qxK", "AIus2YpTw6A"


def value_set(org_unit: str, data_set: str = DS1, **extra: Any) -> dict[str, Any]:
    return {"dataSet": data_set, "period": "202401", "orgUnit": org_unit,
            "dataValues": [{"dataElement": "Re46C6Apebu", "categoryOptionCombo": "HllvX50cXC0", "value": "5",
                            **extra}]}


class SubmitterScopeTests(GatewayTestCase):
    """Two submitters in two districts, as the review's sub1/sub2."""

    with_simulator = True

    async def setUp(self) -> None:  # type: ignore[override]
        await super().setUp()
        db = self.gateway.db
        await db.execute("test.ou", "DELETE FROM organisation_units WHERE uid = ANY(%s)", ([F1, F2],))
        for uid, level, path in ((ROOT, 1, f"/{ROOT}"), (D1, 2, f"/{ROOT}/{D1}"), (D2, 2, f"/{ROOT}/{D2}"),
                                 (F1, 3, f"/{ROOT}/{D1}/{F1}"), (F2, 3, f"/{ROOT}/{D2}/{F2}")):
            await db.execute("test.ou", "INSERT INTO organisation_units (uid, code, name, level, path)"
                             " VALUES (%s, %s, %s, %s, %s)", (uid, uid.lower(), uid, level, path))
        self.admin = await self.user_token("scope-admin", "admin")
        self.sub1 = await self.user_token("sub1", "submitter")
        self.sub2 = await self.user_token("sub2", "submitter")
        await self.set_user("sub1", {"orgunit_scope": [D1], "dataset_scope": [DS1]})
        await self.set_user("sub2", {"orgunit_scope": [D2]})

    async def set_user(self, username: str, fields: dict[str, Any]) -> dict[str, Any]:
        row = await self.gateway.db.fetch_one("test.uid", "SELECT uid FROM users WHERE username = %s", (username,))
        code, body = await self.request_json("PUT", f"/api/v2/users/{row['uid']}", fields, self.admin)
        self.assertEqual(code, 200, body)
        return body  # type: ignore[no-any-return]

    async def test_writes_inside_the_subtree_only(self) -> None:
        """sub1 (district 1) writes its facility; another district's facility is 403 naming it."""
        code, body = await self.request_json("POST", "/api/v2/aggregate", value_set(F1), self.sub1)
        self.assertEqual(code, 202, body)
        code, body = await self.request_json("POST", "/api/v2/aggregate", value_set(F2), self.sub1)
        self.assertEqual((code, body["error"]["code"], body["error"]["details"]["orgUnit"]),
                         (403, "outside_scope", F2))
        self.assertIn(F2, body["error"]["message"])
        # a value of the set pointing at another org unit is checked too
        payload = value_set(F1)
        payload["dataValues"].append({"dataElement": "Re46C6Apebu", "orgUnit": F2, "value": "1"})
        code, body = await self.request_json("POST", "/api/v2/aggregate", payload, self.sub1)
        self.assertEqual((code, body["error"]["details"]["orgUnit"]), (403, F2))
        code, body = await self.request_json("POST", "/api/v2/aggregate", value_set("UnknownUnit"), self.sub1)
        self.assertEqual((code, body["error"]["details"]["known"]), (403, False))

    async def test_data_set_scope(self) -> None:
        """sub1 may write data set 1 only."""
        code, body = await self.request_json("POST", "/api/v2/aggregate", value_set(F1, DS2), self.sub1)
        self.assertEqual((code, body["error"]["code"], body["error"]["details"].get("dataSet")),
                         (403, "outside_scope", DS2), body)

    async def test_delete_needs_the_permission(self) -> None:
        """The review's attack: sub2 deletes sub1's value with ?importStrategy=DELETE. Now: 403 outside its
        subtree, and 403 even inside it until an admin grants may_delete."""
        code, body = await self.request_json("POST", "/api/v2/aggregate?importStrategy=DELETE", value_set(F1),
                                             self.sub2)
        self.assertEqual((code, body["error"]["code"]), (403, "delete_not_allowed"))
        code, body = await self.request_json("POST", "/api/v2/aggregate?importStrategy=DELETE", value_set(F2),
                                             self.sub2)
        self.assertEqual((code, body["error"]["code"]), (403, "delete_not_allowed"))
        code, body = await self.request_json("POST", "/api/v2/aggregate?skipAudit=true", value_set(F2), self.sub2)
        self.assertEqual((code, body["error"]["code"]), (403, "delete_not_allowed"))
        user = await self.set_user("sub2", {"may_delete": True})
        self.assertIs(user["may_delete"], True)
        code, body = await self.request_json("POST", "/api/v2/aggregate?importStrategy=DELETE", value_set(F1),
                                             self.sub2)
        self.assertEqual((code, body["error"]["code"]), (403, "outside_scope"))
        code, body = await self.request_json("POST", "/api/v2/aggregate?importStrategy=DELETE", value_set(F2),
                                             self.sub2)
        self.assertEqual(code, 202, body)

    async def test_users_api_shows_and_clears_the_scope(self) -> None:
        """GET /users/{uid} shows the scope; an empty list removes the limit; bad UIDs are 400."""
        user = await self.set_user("sub1", {"orgunit_scope": []})
        self.assertEqual((user["orgunit_scope"], user["dataset_scope"]), ([], [DS1]))
        code, _ = await self.request_json("POST", "/api/v2/aggregate", value_set(F2), self.sub1)
        self.assertEqual(code, 202)
        row = await self.gateway.db.fetch_one("test.uid", "SELECT uid FROM users WHERE username = 'sub1'")
        code, body = await self.request_json("PUT", f"/api/v2/users/{row['uid']}", {"orgunit_scope": ["x; DROP"]},
                                             self.admin)
        self.assertEqual(code, 400)
        code, body = await self.request_json("PUT", f"/api/v2/users/{row['uid']}", {"may_delete": True}, self.sub1)
        self.assertEqual(code, 403)

    async def test_tracker_org_units_are_checked(self) -> None:
        """Every orgUnit of a tracker payload (entity, enrollment, event) must be inside the scope."""
        from tests.badinput.test_bodies import TRACKER

        payload = json.loads(json.dumps(TRACKER).replace("ty5AJ6ZU5f7", F1))
        code, body = await self.request_json("POST", "/api/v2/tracker", payload, self.sub2)
        self.assertEqual((code, body["error"]["code"], body["error"]["details"]["orgUnit"]),
                         (403, "outside_scope", F1))
        payload["trackedEntities"][0]["enrollments"][0]["events"][0]["orgUnit"] = F2
        payload["trackedEntities"][0]["orgUnit"] = F2
        payload["trackedEntities"][0]["enrollments"][0]["orgUnit"] = F2
        code, body = await self.request_json("POST", "/api/v2/tracker", payload, self.sub2)
        self.assertNotEqual(code, 403, body)
