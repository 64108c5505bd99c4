"""SQL-looking and malformed strings in every documented query filter and path parameter of the API.

Routes and their filters are discovered from ``gateway.router.routes`` (``MountedRoute.spec.query``
holds the OpenAPI parameter objects), so a new filter is covered without editing this file.
"""
from __future__ import annotations

import re

from tests.badinput.support import ODD_STRINGS, SQL_STRINGS, BadInputTestCase, query_value

#: Path parameters get a plain value that exists nowhere (a route must answer 404/400, not 5xx).
_PATH_ARG = re.compile(r"<(?:(\w+):)?(\w+)>")


def concrete(path: str, value: str = "AbCdEfGhIjK") -> str:
    """``path`` with every ``<arg>`` / ``<int:arg>`` replaced (ints by 999999999)."""
    return _PATH_ARG.sub(lambda m: "999999999" if m.group(1) == "int" else query_value(value), path)


class QueryFilterTests(BadInputTestCase):
    """Every GET route × every query parameter × every hostile string."""

    async def seed(self) -> None:
        """A few submissions and mappings so the filters run over real rows."""
        await self.send("POST", "/api/v2/mappings", b'{"code": "BAD1", "what": "de", "dataelement": "Re46C6Apebu",'
                        b' "dataset": "uFaVMlw4qxK", "category_option_combo": "HllvX50cXC0"}')
        for i in range(3):
            await self.send("POST", "/api/v2/aggregate", b'{"orgUnit": "ty5AJ6ZU5f7", "period": "202401",'
                            b' "dataValues": {"BAD1": %d}}' % i, token="submitter")

    async def test_sql_strings_in_every_get_filter(self) -> None:
        """No 5xx, no traceback, errors enveloped, tables intact — for each filter of each GET route."""
        await self.seed()
        routes = [r for r in self.gateway.router.routes if r.spec.method == "GET" and r.spec.query]
        self.assertGreater(len(routes), 5)
        names = 0
        for route in routes:
            for param in route.spec.query:
                if param.get("in", "query") != "query":
                    continue
                names += 1
                for text in SQL_STRINGS + ODD_STRINGS:
                    await self.send("GET", f"{concrete(route.full_path)}?{param['name']}={query_value(text)}")
        self.assertGreater(names, 40)
        await self.assert_no_problems()

    async def test_hostile_query_on_other_methods(self) -> None:
        """Query parameters of POST/DELETE routes (purge, requeue, import options) get the same strings."""
        routes = [r for r in self.gateway.router.routes if r.spec.method != "GET" and r.spec.query]
        for route in routes:
            for param in route.spec.query:
                if param.get("in", "query") != "query":
                    continue
                for text in SQL_STRINGS[:4] + ("\x00", "\ud800"):
                    body = b"{}" if route.spec.body_schema is not None else None
                    await self.send(route.spec.method, f"{concrete(route.full_path)}?{param['name']}="
                                    f"{query_value(text)}", body)
        await self.assert_no_problems()

    async def test_hostile_path_parameters(self) -> None:
        """Every route with a path parameter, given SQL-looking and broken values in it."""
        routes = [r for r in self.gateway.router.routes if "<" in r.full_path and ":path" not in r.full_path]
        for route in routes:
            body = b"{}" if route.spec.body_schema is not None else None
            for text in SQL_STRINGS + ("\x00", "\ud800", "x" * 3000):
                await self.send(route.spec.method, concrete(route.full_path, text), body)
        await self.assert_no_problems()

    async def test_raw_broken_query_strings(self) -> None:
        """Invalid percent-escapes, raw invalid UTF-8 and NUL bytes in the query string itself."""
        for raw in ("status=%ZZ", "status=%", "q=%FF%FE", "q=%C0%AF", "page=%00", "status=failed&status=%FF",
                    "from=2024-13-45", "from=%27%3B--", "page=-1", "page_size=100000000", "sort=id;drop",
                    "cursor=%FF%FF", "cursor=!!!!", "&&&==&", "a" * 6000 + "=1"):
            await self.send("GET", f"/api/v2/logs?{raw}")
            await self.send("GET", f"/api/v2/mappings?{raw}")
            await self.send("GET", f"/api/v2/requests?{raw}")
        await self.assert_no_problems()
