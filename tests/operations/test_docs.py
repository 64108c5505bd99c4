"""/openapi.json from the route table, Swagger UI offline (and in headless Chromium), docs pages."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import treq
from jsonschema import Draft202012Validator
from twisted.internet import reactor
from twisted.internet.threads import deferToThreadPool
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from dhis2gw.api.docs import safe_file
from dhis2gw.operations.openapi import openapi_path
from tests.operations.support import OperationsTestCase
from tests.support.services import ROOT

OUTPUT = ROOT / "test-output" / "swagger"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


class OpenApiTests(OperationsTestCase):
    """The OpenAPI document describes every mounted route, with the schemas that validate requests."""

    async def test_document_covers_the_route_table(self) -> None:
        """Every API route is in the document with its method, roles, body schema and error envelope."""
        code, doc = await self.call("GET", "/openapi.json")
        self.assertEqual(code, 200)
        self.assertEqual(doc["openapi"], "3.1.0")
        self.assertEqual(set(doc["components"]["securitySchemes"]), {"bearerAuth", "basicAuth", "tokenAuth"})
        self.assertEqual(doc["components"]["securitySchemes"]["tokenAuth"],
                         {"type": "apiKey", "in": "header", "name": "Authorization",
                          "description": "An API token: `Authorization: Token <token>`."})
        for mounted in self.gateway.router.routes:
            if "ui" in mounted.spec.tags:
                continue
            path, _ = openapi_path(mounted.full_path)
            op = doc["paths"][path][mounted.spec.method.lower()]
            for status, response in op["responses"].items():
                if int(status) >= 400:
                    self.assertEqual(response["content"]["application/json"]["schema"],
                                     {"$ref": "#/components/schemas/Error"}, (path, status))
            if mounted.spec.body_schema is not None:
                schema = op["requestBody"]["content"]["application/json"]["schema"]
                self.assertEqual({k: v for k, v in mounted.spec.body_schema.items() if k != "examples"}, schema)
            if mounted.spec.public:
                self.assertEqual(op["security"], [])
            else:
                self.assertIn("401", op["responses"])
                self.assertEqual(op["x-roles"], sorted(mounted.spec.roles))
        logs = doc["paths"]["/api/v2/logs/{submission_id}"]
        self.assertEqual(logs["get"]["parameters"][0],
                         {"name": "submission_id", "in": "path", "required": True, "schema": {"type": "integer"}})
        self.assertIn("examples", doc["paths"]["/api/v2/logs/requeue"]["post"]["requestBody"]["content"][
            "application/json"])
        self.assertTrue(doc["paths"]["/api/v2/aggregate/reenqueue/batch"]["post"]["deprecated"])
        self.assertIn("text/plain", doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"])
        self.assertNotIn("/swagger/", doc["paths"])
        # the answers of the operations API match their own documented schemas
        code, page = await self.call("GET", "/api/v2/logs")
        schema = doc["paths"]["/api/v2/logs"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        self.assertEqual(list(Draft202012Validator(schema).iter_errors(page)), [])


class SwaggerAndDocsTests(OperationsTestCase):
    """Swagger UI assets, the landing page and Markdown docs."""

    async def get(self, path: str, accept: str = "*/*") -> tuple[int, str, bytes]:
        response = await treq.get(self.url(path), headers={"Accept": [accept]}, persistent=False)
        body = await response.content()
        return response.code, (response.headers.getRawHeaders("content-type") or [""])[0], body

    async def test_swagger_served_offline(self) -> None:
        """/swagger/ and /swagger/index.html load the bundle's files from this server, pointed at /openapi.json."""
        code, ctype, body = await self.get("/swagger/")
        self.assertEqual((code, ctype), (200, "text/html; charset=utf-8"))
        self.assertIn(b'src="/swagger/swagger-ui-bundle.js"', body)
        self.assertNotIn(b"https://", body)
        self.assertEqual((await self.get("/swagger/index.html"))[2], body)
        code, ctype, js = await self.get("/swagger/swagger-ui-bundle.js")
        self.assertEqual((code, ctype), (200, "text/javascript; charset=utf-8"))
        self.assertGreater(len(js), 500_000)
        code, _, init = await self.get("/swagger/dhis2gw-initializer.js")
        self.assertIn(b'url: "/openapi.json"', init)
        code, _, _ = await self.get("/swagger/../../../etc/passwd")
        self.assertEqual(code, 404)
        response = await treq.get(self.url("/swagger"), allow_redirects=False, persistent=False)
        self.assertEqual((response.code, response.headers.getRawHeaders("location")), (301, ["/swagger/"]))

    async def test_landing_and_pages(self) -> None:
        """/ lists the docs; each shipped page renders from Markdown inside the template."""
        code, ctype, body = await self.get("/")
        self.assertEqual((code, ctype), (200, "text/html; charset=utf-8"))
        for page in ("overview", "quick-start", "aggregate", "tracker", "mappings", "operations"):
            self.assertIn(f'href="/docs/{page}"'.encode(), body)
            code, ctype, html = await self.get(f"/docs/{page}")
            self.assertEqual(code, 200, page)
            self.assertIn(b'<link rel="stylesheet" href="/static/style.css">', html)
            self.assertIn(b"<h1", html)
        code, _, html = await self.get("/docs/operations")
        self.assertIn(b"<table>", html)
        self.assertIn(b"<code>DELETE /api/v2/logs/purge", html)
        code, ctype, css = await self.get("/static/style.css")
        self.assertEqual((code, ctype), (200, "text/css; charset=utf-8"))
        # /docs and /docs/ lead to the index of the pages (/), not to a 404
        for path in ("/docs", "/docs/"):
            response = await treq.get(self.url(path), allow_redirects=False, persistent=False)
            self.assertEqual((response.code, response.headers.getRawHeaders("location")), (302, ["/"]), path)
            await response.content()

    async def test_unknown_pages_and_traversal(self) -> None:
        """Unknown pages are 404 (HTML for browsers, JSON otherwise); traversal never escapes the directories."""
        code, ctype, body = await self.get("/docs/nope", accept="text/html,application/xhtml+xml")
        self.assertEqual((code, ctype), (404, "text/html; charset=utf-8"))
        self.assertIn(b"Documentation not found", body)
        code, ctype, body = await self.get("/docs/nope", accept="application/json")
        self.assertEqual((code, ctype), (404, "application/json"))
        self.assertIn(b'"code":"not_found"', body)
        for path in ("/docs/..%2F..%2Fsetup", "/docs/%2e%2e", "/static/../setup.cfg", "/static/..%2F..%2Fsetup.cfg",
                     "/static/%2e%2e/%2e%2e/etc/passwd", "/static/.hidden", "/docs/..%5C..%5Csetup"):
            code, _, body = await self.get(path)
            self.assertEqual(code, 404, path)
            self.assertNotIn(b"[metadata]", body)

    async def test_swagger_renders_in_chromium(self) -> None:
        """Headless Chromium renders /swagger/ with the API's operations listed (screenshot + DOM text)."""
        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        if chromium is None:
            raise SkipTest("chromium is not installed (apt-get install -y chromium)")
        OUTPUT.mkdir(parents=True, exist_ok=True)
        profile = tempfile.mkdtemp(prefix="dhis2gw-chromium-")
        self.addCleanup(shutil.rmtree, profile, True)
        base = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--window-size=1280,2400",
                "--virtual-time-budget=15000", "--run-all-compositor-stages-before-draw"]
        url = self.url("/swagger/")

        def run() -> tuple[str, bytes]:
            dom = subprocess.run(base + ["--dump-dom", url], capture_output=True, text=True, timeout=120)
            shot = subprocess.run(base + [f"--screenshot={OUTPUT / 'swagger.png'}", url],
                                  capture_output=True, timeout=120)
            return dom.stdout, shot.stderr

        dom, _ = await deferToThreadPool(reactor, reactor.getThreadPool(), run)
        (OUTPUT / "swagger-dom.html").write_text(dom, encoding="utf-8")
        self.assertIn('class="swagger-ui"', dom)
        for text in ("/api/v2/logs", "/api/v2/logs/{submission_id}/requeue", "/api/v2/queue",
                     "/api/v2/aggregate", "/openapi.json"):
            self.assertIn(text, dom)
        self.assertIn("opblock-tag", dom)
        png = (OUTPUT / "swagger.png").read_bytes()
        self.assertEqual(png[:8], b"\x89PNG\r\n\x1a\n")
        self.assertGreater(len(png), 20_000)


class SafeFileTests(SynchronousTestCase):
    """safe_file resolves only regular files inside the base directory."""

    def test_refusals(self) -> None:
        """.., absolute paths, hidden names, directories and symlinks out of the tree are refused."""
        base = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, base, True)
        os.mkdir(os.path.join(base, "sub"))
        with open(os.path.join(base, "sub", "a.md"), "w") as fh:
            fh.write("# A")
        os.symlink("/etc/passwd", os.path.join(base, "link.md"))
        from pathlib import Path

        root = Path(base)
        self.assertEqual(safe_file(root, "sub/a.md"), (root / "sub" / "a.md").resolve())
        for bad in ("../etc/passwd", "/etc/passwd", "sub/../../x", ".git/config", "sub", "link.md", "",
                    "sub\\..\\..\\x", "a\x00b"):
            self.assertIsNone(safe_file(root, bad), bad)


