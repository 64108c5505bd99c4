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
        status, body, headers = await self.call("GET", "/dummy/admin", headers={"Authorization": creds.expired["admin"]})
        self.assertEqual((status, body["error"]["code"]), (401, "token_expired"))
        self.assertIn('error="invalid_token"', headers["www-authenticate"])
