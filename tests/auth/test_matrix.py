"""The authorisation matrix over every route the router knows."""
from __future__ import annotations

from tests.auth.harness import AuthApiTestCase
from tests.support.authmatrix import prepare_credentials, walk_auth_matrix


class AuthMatrixTests(AuthApiTestCase):
    """Walks Router.routes × {none, malformed, expired, tampered, deactivated, wrong role, own uid, valid}."""

    max_failures = 10**6  # the deactivated user's Basic attempts must stay 401, not turn into 429

    async def test_every_route_obeys_the_matrix(self) -> None:
        """Every route answers each credential case exactly as the matrix says, with the JSON envelope."""
        creds = await prepare_credentials(self.auth)
        for header in [*creds.valid.values(), *creds.deactivated]:
            self.scanner.add_secret(header.split(" ", 1)[1], "credential")
        checks, problems = await walk_auth_matrix(self.router.routes, self.send, creds)
        self.assertEqual(problems, [])
        paths = {r.full_path for r in self.router.routes}
        # the walk covered the users area and every dummy role level
        self.assertTrue({"/api/v2/users/<uid>", "/api/v2/requests", "/api/v2/dummy/operator/<int:item_id>",
                         "/api/v2/dummy/own/<uid>", "/api/v2/users/getToken"} <= paths)
        self.assertGreater(checks, 20 * len(self.router.routes) // 2)

    async def test_valid_answers_carry_content(self) -> None:
        """A valid credential reaches the handler: the body is the handler's, with the caller's identity."""
        creds = await prepare_credentials(self.auth)
        status, body, _ = await self.call("GET", "/dummy/any", headers={"Authorization": creds.valid["operator"]})
        self.assertEqual((status, body), (200, {"role": "operator"}))
        status, body, _ = await self.call("GET", f"/dummy/own/{creds.own_uid['submitter']}",
                                          headers={"Authorization": creds.valid["submitter"]})
        self.assertEqual((status, body), (200, {"uid": creds.own_uid["submitter"]}))
        status, body, headers = await self.call("GET", "/dummy/admin",
                                                headers={"Authorization": creds.valid["operator"]})
        self.assertEqual((status, body["error"]["code"]), (403, "forbidden"))
        status, body, headers = await self.call("GET", "/dummy/admin",
                                                headers={"Authorization": creds.expired["admin"]})
        self.assertEqual((status, body["error"]["code"]), (401, "token_expired"))
        self.assertIn('error="invalid_token"', headers["www-authenticate"])

    async def test_permission_fields_are_admin_only(self) -> None:
        """Issue 16: callback_allowed, orgunit_scope, dataset_scope and may_delete on a user's own
        PUT /users/{uid} (a self_allowed route): 403 for operator and submitter, with any credential
        scheme; the admin sets them; and a trusted-proxy X-Forwarded-For changes nothing about who may."""
        creds = await prepare_credentials(self.auth)
        changes = {"callback_allowed": True, "orgunit_scope": ["ty5AJ6ZU5f7"], "dataset_scope": ["uFaVMlw4qxK"],
                   "may_delete": True}
        for role in ("operator", "submitter"):
            uid = creds.own_uid[role]
            for field, value in changes.items():
                for extra in ({}, {"X-Forwarded-For": "10.9.9.9"}):
                    status, body, _ = await self.call("PUT", f"/users/{uid}", {field: value},
                                                      headers={"Authorization": creds.valid[role], **extra})
                    self.assertEqual((status, body["error"]["code"]), (403, "forbidden"), (role, field))
            status, body, _ = await self.call("PUT", f"/users/{uid}", changes,
                                              headers={"Authorization": creds.valid["admin"]})
            self.assertEqual(status, 200, body)
            self.assertEqual({k: body[k] for k in changes}, changes)
            status, body, _ = await self.call("GET", f"/users/{uid}", headers={"Authorization": creds.valid[role]})
            self.assertEqual((status, body["may_delete"]), (200, True))
