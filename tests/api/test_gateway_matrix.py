"""The authorisation matrix over EVERY route of a fully wired gateway (routes discovered from its router)."""
from __future__ import annotations

import treq

from tests.support.authmatrix import prepare_credentials, walk_auth_matrix
from tests.support.gateway import GatewayTestCase


class GatewayAuthMatrixTests(GatewayTestCase):
    """Each route × {no credentials, malformed, expired, tampered, wrong role, deactivated, valid}."""

    timeout = 600
    # The matrix sends thousands of deliberately bad logins: keep throttling out of its way
    # (throttling has its own tests in tests/auth).
    extra_environ = {"DHIS2GW_LOGIN_MAX_FAILURES": "1000000"}

    async def test_every_route_follows_the_matrix(self) -> None:
        """401/403/allowed exactly as the role table says, on every route the gateway serves."""
        creds = await prepare_credentials(self.gateway.auth)

        async def send(method: str, path: str, headers: dict[str, str],
                       body: bytes | None) -> tuple[int, bytes, dict[str, str]]:
            response = await treq.request(method, self.url(path), headers=headers, data=body, persistent=False)
            raw = await response.content()
            return response.code, raw, {k.decode().lower(): v[0].decode() for k, v in
                                        response.headers.getAllRawHeaders()}

        routes = self.gateway.router.routes
        checks, problems = await walk_auth_matrix(routes, send, creds)
        self.assertEqual(problems, [])
        self.assertGreater(len(routes), 10)
        self.assertGreater(checks, 100)
