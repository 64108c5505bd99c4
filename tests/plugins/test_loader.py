"""The plugin loader: discovery from the drop-in directory, verification, skipping, listing."""
from __future__ import annotations

import json
import sys
from typing import Any

from treq.testing import StubTreq
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

import dhis2gw.plugins as plugin_package
from dhis2gw.api.plugins import PluginsApi
from dhis2gw.api.routing import Router
from dhis2gw.interfaces import ISubmissionKind
from dhis2gw.kinds.aggregate import AggregateKind
from dhis2gw.storage.mappings import MappingStore
from dhis2gw.wiring.features import plugin_job
from dhis2gw.wiring.plugins import load_plugins
from tests.plugins.support import SHIPPED, LogCapture, PluginDir, isolate_plugin_path, make_config, make_context
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
    def __init__(self, role):
        self.role = role

    @route("GET", "/hello", roles=ANY_USER)
    async def hello(self, call):
        return {"hello": call.principal.username, "role": self.role}


@implementer(IPlugin, IApiExtension)
class Greeter:
    name = "greeter"

    def api_area(self, context):
        return Area(context.role)


@implementer(IPlugin, ICronJob)
class Nightly:
    name = "nightly-pull"
    cron_expression = "0 2 * * *"

    async def run(self, context):
        return {"pulled": 0, "role": context.role}


greeter = Greeter()
nightly = Nightly()
'''


class ShippedPluginsTests(SynchronousTestCase):
    """Both plugins of the top-level plugins/ directory load through getPlugins."""

    def test_loads_both_shipped_plugins_and_lists_builtins(self) -> None:
        """The event and callback kinds come from plugins/*.py; aggregate is verified and listed as built-in."""
        isolate_plugin_path(self)
        kinds: dict[str, Any] = {"aggregate": AggregateKind(MappingStore(None))}
        report = load_plugins(make_context(Clock()), kinds, str(SHIPPED)).report
        self.assertEqual(sorted(kinds), ["aggregate", "callback", "event"])
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
        self.assertTrue(ISubmissionKind.providedBy(kinds["event"]))


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
        kinds: dict[str, Any] = {}
        logs = LogCapture()
        try:
            load = load_plugins(make_context(Clock()), kinds, str(self.dir.path))
            report = load.report
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
        self.assertNotIn("half", kinds)
        # the good module next to them still loaded: an extension and a cron job
        self.assertEqual([p for p, _ in load.areas], ["/api/v2/ext/greeter"])
        self.assertEqual([j.name for j in load.cron_jobs], ["nightly-pull"])
        loaded = {r.name: r for r in report.loaded}
        self.assertEqual(loaded["greeter"].module, f"dhis2gw.plugins.{good}")
        self.assertEqual(loaded["nightly-pull"].interfaces, ["ICronJob"])

    def test_plugins_endpoint_lists_loaded_and_skipped(self) -> None:
        """GET /api/v2/plugins (operator) lists loaded plugins with origin and skipped ones with their error;
        mounted and scheduled as the composition root does, the extension and the cron job get the context."""
        broken = self.dir.write("broken", BROKEN_IMPORT)
        self.dir.write("greeting", EXTENSION_AND_JOB)
        context = make_context(Clock(), config=make_config(self.dir.path))
        kinds: dict[str, Any] = {"aggregate": AggregateKind(MappingStore(None))}
        load = load_plugins(context, kinds, str(self.dir.path))
        router = Router(StaticAuthenticator())
        router.mount("/api/v2", PluginsApi(load.report))
        for prefix, area in load.areas:
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
        self.assertEqual((code, hello), (200, {"hello": "submitter1", "role": "api"}))
        [job] = [plugin_job(p, context) for p in load.cron_jobs]
        self.assertEqual((job.name, job.cron_expression), ("nightly-pull", "0 2 * * *"))
        self.assertEqual(self.successResultOf(defer.Deferred.fromCoroutine(job.work())), {"pulled": 0, "role": "api"})



RECORDING = '''
"""A kind, an extension and a cron job that record the context they were given."""
from twisted.plugin import IPlugin
from zope.interface import implementer
from dhis2gw.interfaces import IApiExtension, ICronJob, ISubmissionKind


@implementer(IPlugin, ISubmissionKind)
class Recorder:
    name = "recorder"
    endpoint = "/submissions/recorder"
    request_schema = {"type": "object"}

    def __init__(self):
        self.contexts = []

    def setup(self, context):
        self.contexts.append(context)
        context.ingest_checks.append(self.check)

    def check(self, principal, body):
        pass

    async def prepare(self, request):
        return None

    async def deliver(self, client, submission, context):
        return None


@implementer(IPlugin, IApiExtension, ICronJob)
class Both:
    name = "both"
    cron_expression = "*/5 * * * *"

    def __init__(self):
        self.calls = []

    def setup(self, context):
        self.calls.append(("setup", context))

    def api_area(self, context):
        self.calls.append(("api_area", context))
        return object()

    async def run(self, context):
        return {}


@implementer(IPlugin, ISubmissionKind)
class Clash:
    name = "aggregate"
    endpoint = None
    request_schema = None

    def setup(self, context):
        raise AssertionError("setup is not called for a name that is taken")

    async def prepare(self, request):
        return None

    async def deliver(self, client, submission, context):
        return None


@implementer(IPlugin, ICronJob)
class FailingSetup:
    name = "failing"
    cron_expression = "0 0 * * *"

    def setup(self, context):
        raise RuntimeError("no licence key")

    async def run(self, context):
        return {}


recorder = Recorder()
both = Both()
clash = Clash()
failing = FailingSetup()
'''


class LoadPluginsTests(SynchronousTestCase):
    """``load_plugins(context, kinds, directory)`` with a context of fakes: what each plugin gets and
    what the composition root is handed back."""

    def setUp(self) -> None:
        isolate_plugin_path(self)
        self.dir = PluginDir()
        self.addCleanup(self.dir.cleanup)

    def test_plugins_get_the_context_and_the_load_lists_areas_and_jobs(self) -> None:
        """``setup`` and ``api_area`` get the very context passed in; kinds land in ``kinds``; the area
        is returned under /api/v2/ext/<name> and the job in ``cron_jobs``; a clash with a built-in kind
        and a raising ``setup`` are skipped."""
        module = self.dir.write("recording", RECORDING)
        context = make_context(Clock())
        builtin = AggregateKind(MappingStore(None))
        kinds: dict[str, Any] = {"aggregate": builtin}
        logs = LogCapture()
        try:
            load = load_plugins(context, kinds, str(self.dir.path))
        finally:
            logs.stop()
        plugins = sys.modules[f"dhis2gw.plugins.{module}"]
        self.assertEqual(plugins.recorder.contexts, [context])
        self.assertIs(plugins.recorder.contexts[0], context)
        self.assertEqual([(what, c is context) for what, c in plugins.both.calls],
                         [("setup", True), ("api_area", True)])
        self.assertEqual(kinds, {"aggregate": builtin, "recorder": plugins.recorder})
        self.assertEqual(context.ingest_checks, [plugins.recorder.check])
        self.assertEqual([prefix for prefix, _ in load.areas], ["/api/v2/ext/both"])
        self.assertEqual(load.cron_jobs, [plugins.both])
        skipped = {r.name: r.error for r in load.report.skipped}
        self.assertEqual(skipped, {"aggregate": "registration failed: ValueError: a submission kind named "
                                                "'aggregate' is already registered",
                                   "failing": "registration failed: RuntimeError: no licence key"})
        self.assertEqual(len(logs.texts("error")), 2)
        self.assertEqual(sorted(r.name for r in load.report.loaded), ["aggregate", "both", "recorder"])

    def test_missing_directory_loads_only_builtins(self) -> None:
        """A plugins directory that does not exist: one info line, built-in kinds still verified and listed."""
        kinds: dict[str, Any] = {"aggregate": AggregateKind(MappingStore(None))}
        load = load_plugins(make_context(Clock()), kinds, str(self.dir.path / "absent"))
        self.assertEqual([r.name for r in load.report.loaded], ["aggregate"])
        self.assertEqual((load.areas, load.cron_jobs, load.report.skipped), ([], [], []))
