"""Issue 16, F3: no request can grow the Swagger file cache (a fixed set of known files)."""
from __future__ import annotations

import os

import treq
from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, HTTPConnectionPool

from dhis2gw.api.docs import SwaggerArea
from dhis2gw.api.routing import Router
from dhis2gw.api.site import GatewaySite


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class SwaggerCacheTests(TestCase):
    """1,000 spellings of the bundle's biggest files, unauthenticated: the cache stays at the known files."""

    async def test_path_spellings_do_not_grow_memory(self) -> None:
        """Backslashes (%5C), ./, //, and the source map itself: 404 or one cached copy; RSS grows < 5 MB."""
        area = SwaggerArea(reactor)
        router = Router(None)
        router.mount("", area)
        port = reactor.listenTCP(0, GatewaySite(router.resource(), max_body_bytes=1 << 20), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        pool = HTTPConnectionPool(reactor, persistent=True)
        pool.maxPersistentPerHost = 10
        self.addCleanup(pool.closeCachedConnections)
        http = treq.client.HTTPClient(Agent(reactor, pool=pool))
        base = f"http://127.0.0.1:{port.getHost().port}/swagger/"

        async def get(path: str) -> int:
            response = await http.get(base + path)
            await response.content()
            return int(response.code)

        self.assertEqual(await get("swagger-ui-bundle.js"), 200)  # the legitimate copy, cached once
        self.assertEqual(await get("swagger-ui.css"), 200)
        before = rss_bytes()
        spellings = []
        for i in range(1, 1001):
            name = ("swagger-ui-bundle.js" if i % 2 else "swagger-ui-bundle.js.map")
            spellings.append([name + "%5C" * (i % 40 + 1), "./" * (i % 20 + 1) + name, name + "/" * (i % 7 + 1),
                              "%5C" * (i % 30 + 1) + name, name.upper() + "%5c" * (i % 10)][i % 5])
        codes: list[int] = []
        for start in range(0, len(spellings), 10):
            codes += await defer.gatherResults([defer.Deferred.fromCoroutine(get(p))
                                                for p in spellings[start:start + 10]])
        growth = rss_bytes() - before
        self.assertEqual(set(codes), {404})
        self.assertLessEqual(set(area._files), set(area.known))
        self.assertLess(growth, 5 << 20, f"RSS grew {growth / 2**20:.1f} MiB over 1,000 spellings")
        self.assertNotIn("swagger-ui-bundle.js.map", area.known)

    def test_known_set_is_fixed(self) -> None:
        """The known files are listed at start-up: the Swagger UI assets, no source maps, nothing hidden."""
        area = SwaggerArea(reactor)
        self.assertIn("swagger-ui-bundle.js", area.known)
        self.assertTrue(all(not n.startswith(".") and not n.endswith(".map") for n in area.known))
        self.assertLess(len(area.known), 50)

