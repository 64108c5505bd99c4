"""The plugin loader: discovery from the drop-in directory, verification, skipping, listing."""
from __future__ import annotations

import json
from typing import Any

from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

import dhis2gw.plugins as plugin_package
from dhis2gw.api.routing import Router
from dhis2gw.interfaces import ISubmissionKind
from dhis2gw.kinds.aggregate import AggregateKind
from dhis2gw.plugins_loader import install, load_plugins
from dhis2gw.storage.mappings import MappingStore
from tests.plugins.support import SHIPPED, LogCapture, PluginDir, isolate_plugin_path, make_gateway
from tests.support.fake_auth import StaticAuthenticator, test_headers

BROKEN_IMPORT = '''
"""A plugin whose import fails."""
raise RuntimeError("database of widgets not found")
'''

HALF_KIND = '''
"""A kind that forgot deliver()."""
from twisted.plugin import IPlugin
from zope.interface import implementer
from dhis2gw.interfaces import ISubmissionKind


@implementer(IPlugin, ISubmissionKind)
class HalfKind:
    name = "half"
    endpoint = "/submissions/half"
    request_schema = {"type": "object"}

    async def prepare(self, request):
        return None


half = HalfKind()
'''

EXTENSION_AND_JOB = '''
"""An API extension and a cron job."""
from twisted.plugin import IPlugin
from zope.interface import implementer
from dhis2gw.api.routing import ANY_USER, route
from dhis2gw.interfaces import IApiExtension, ICronJob


class Area:
    @route("GET", "/hello", roles=ANY_USER)
    async def hello(self, call):
        return {"hello": call.principal.username}


@implementer(IPlugin, IApiExtension)
class Greeter:
    name = "greeter"

    def api_area(self, gateway):
        return Area()


@implementer(IPlugin, ICronJob)
class Nightly:
    name = "nightly-pull"
    cron_expression = "0 2 * * *"

    async def run(self, gateway):
        return {"pulled": 0}


greeter = Greeter()
nightly = Nightly()
'''


class ShippedPluginsTests(SynchronousTestCase):
    """Both plugins of the top-level plugins/ directory load through getPlugins."""

    def test_loads_both_shipped_plugins_and_lists_builtins(self) -> None:
        """The event and callback kinds come from plugins/*.py; aggregate is verified and listed as built-in."""
        isolate_plugin_path(self)
        gateway = make_gateway(Clock())
        gateway.kinds["aggregate"] = AggregateKind(MappingStore(None))
        report = load_plugins(gateway)
        self.assertEqual(sorted(gateway.kinds), ["aggregate", "callback", "event"])
        by_name = {r.name: r for r in report.loaded}
        self.assertEqual(by_name["event"].origin, str(SHIPPED / "example_kind.py"))
        self.assertEqual(by_name["callback"].origin, str(SHIPPED / "callback.py"))
        self.assertEqual(by_name["event"].module, "dhis2gw.plugins.example_kind")
        self.assertEqual(by_name["event"].interfaces, ["ISubmissionKind"])
        self.assertTrue(by_name["aggregate"].builtin)
        self.assertTrue(by_name["aggregate"].origin.endswith("dhis2gw/kinds/aggregate.py"))
        self.assertFalse(by_name["event"].builtin)
        self.assertEqual(report.skipped, [])
        self.assertIn(str(SHIPPED), report.directories)
        self.assertIn(str(SHIPPED), plugin_package.__path__)
        self.assertTrue(ISubmissionKind.providedBy(gateway.kinds["event"]))


class BrokenPluginTests(SynchronousTestCase):
    """Broken plugins are skipped with one clear log line each; the rest still loads."""

    def setUp(self) -> None:
        isolate_plugin_path(self)
        self.dir = PluginDir()
        self.addCleanup(self.dir.cleanup)

    def test_broken_plugins_are_skipped_with_one_line(self) -> None:
        """An import error and a verifyObject failure are each logged once, naming module and error."""
        broken = self.dir.write("broken", BROKEN_IMPORT)
        half = self.dir.write("halfkind", HALF_KIND)
        good = self.dir.write("greeting", EXTENSION_AND_JOB)
        gateway = make_gateway(Clock(), self.dir.path)
        logs = LogCapture()
        try:
            report = load_plugins(gateway)
        finally:
            logs.stop()
        errors = [t for t in logs.texts("error")]
        self.assertEqual(len(errors), 2, errors)
        self.assertEqual(errors[0], f"Plugin {broken} ({self.dir.path / (broken + '.py')}) skipped: import failed: "
                                    "RuntimeError: database of widgets not found")
        self.assertIn(f"Plugin half ({self.dir.path / (half + '.py')}) skipped: does not implement ISubmissionKind:",
                      errors[1])
        self.assertIn("deliver", errors[1])
        self.assertEqual([e for e in logs.events if e.get("log_failure") is not None], [],
                         "no traceback is logged for a broken plugin")
        self.assertEqual(logs.texts("critical"), [])
        self.assertEqual(sorted(r.name for r in report.skipped), sorted([broken, "half"]))
        self.assertNotIn("half", gateway.kinds)
        # the good module next to them still loaded: an extension and a cron job
        self.assertEqual([p for p, _ in gateway.areas], ["/api/v2/ext/greeter"])
        self.assertEqual([j.name for j in gateway.parts["cron_jobs"]], ["nightly-pull"])
        loaded = {r.name: r for r in report.loaded}
        self.assertEqual(loaded["greeter"].module, f"dhis2gw.plugins.{good}")
        self.assertEqual(loaded["nightly-pull"].interfaces, ["ICronJob"])

    def test_plugins_endpoint_lists_loaded_and_skipped(self) -> None:
        """GET /api/v2/plugins (operator) lists loaded plugins with origin and skipped ones with their error."""
        broken = self.dir.write("broken", BROKEN_IMPORT)
        self.dir.write("greeting", EXTENSION_AND_JOB)
        gateway = make_gateway(Clock(), self.dir.path)
        gateway.kinds["aggregate"] = AggregateKind(MappingStore(None))
        install(gateway)
        router = Router(StaticAuthenticator())
        for prefix, area in gateway.areas:
            router.mount(prefix, area)
        stub = StubTreq(router.resource())

        def get(path: str, role: str) -> tuple[int, Any]:
            response = self.successResultOf(stub.get("http://gw" + path, headers=test_headers(role)))
            return response.code, json.loads(self.successResultOf(stub.content(response)))

        code, body = get("/api/v2/plugins", "operator")
        self.assertEqual(code, 200)
        names = {p["name"]: p for p in body["plugins"]}
        self.assertEqual(set(names), {"aggregate", "greeter", "nightly-pull"})
        self.assertEqual(names["greeter"]["interfaces"], ["IApiExtension"])
        self.assertEqual(body["skipped"][0]["name"], broken)
        self.assertEqual(body["skipped"][0]["error"], "import failed: RuntimeError: database of widgets not found")
        self.assertIn(str(self.dir.path), body["directories"])
        self.assertEqual(get("/api/v2/plugins", "submitter")[0], 403)
        code, hello = get("/api/v2/ext/greeter/hello", "submitter")
        self.assertEqual((code, hello), (200, {"hello": "submitter1"}))
