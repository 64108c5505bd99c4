"""dhis2gw.runtime.cron relies on a few APScheduler internals that no public 3.x API replaces;
APScheduler is pinned exactly, and these tests check every such internal on the pinned version, so
an upgrade that moves one fails here, by name, instead of in production.

Replaced by public APIs (no longer relied on): ``_configure`` (the clock goes in as the documented
``reactor=`` option), ``_create_default_executor`` (``executors={"default": …}``),
``_lookup_executor`` (the scheduler keeps its executor), ``BaseExecutor._logger`` (a named stdlib
logger), ``_process_jobs`` / ``_real_add_job`` overrides (the public methods that reach them are
wrapped instead).

APScheduler's modules are read as source here, not imported, where importing would install the
global reactor (apscheduler.schedulers.twisted).
"""
from __future__ import annotations

import ast
import configparser
import datetime
import inspect
import re
from importlib import metadata
from importlib.util import find_spec
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from dhis2gw.runtime import cron

ROOT = Path(__file__).resolve().parents[2]

# Every APScheduler private name dhis2gw/runtime/cron.py uses, and why no public API does instead.
PRIVATE_API = {
    "_do_submit_job": "BaseExecutor's abstract hook: the one method an executor must implement",
    "_run_job_success": "how an executor reports a finished execution (decrements max_instances, dispatches events)",
}
# The module global ClockScheduler points at the clock (the scheduler's only source of "now").
NOW_GLOBAL = ("apscheduler.schedulers.base", "datetime")


def _source(module: str) -> str:
    spec = find_spec(module)
    assert spec is not None and spec.origin is not None, module
    return Path(spec.origin).read_text(encoding="utf-8")


def _methods(*modules: str) -> dict[str, ast.FunctionDef]:
    """The methods of the scheduler classes in ``modules``; a later module's override wins."""
    found: dict[str, ast.FunctionDef] = {}
    for module in modules:
        for node in ast.walk(ast.parse(_source(module))):
            if isinstance(node, ast.ClassDef):
                found.update({f.name: f for f in node.body if isinstance(f, ast.FunctionDef)})
    return found


def _self_calls(function: ast.FunctionDef) -> set[str]:
    return {n.func.attr for n in ast.walk(function) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
            and isinstance(n.func.value, ast.Name) and n.func.value.id == "self"}


def _reads_now(function: ast.FunctionDef) -> bool:
    return any(isinstance(n, ast.Attribute) and n.attr == "now" and isinstance(n.value, ast.Name)
               and n.value.id == "datetime" for n in ast.walk(function))


class APSchedulerPinTests(SynchronousTestCase):
    """The pin in setup.cfg and the internals cron.py relies on."""

    def test_pinned_exactly_to_the_installed_version(self) -> None:
        """setup.cfg pins APScheduler with ==, to the version installed here."""
        cfg = configparser.ConfigParser()
        cfg.read(ROOT / "setup.cfg")
        (pin,) = [r.strip() for r in cfg["options"]["install_requires"].splitlines()
                  if r.strip().lower().startswith("apscheduler")]
        self.assertRegex(pin, r"^APScheduler==\d+\.\d+\.\d+$")
        self.assertEqual(pin.split("==")[1], metadata.version("APScheduler"))

    def test_private_names_used_are_the_listed_ones(self) -> None:
        """The private APScheduler names cron.py uses (or overrides) are exactly PRIVATE_API."""
        aps_private: set[str] = set()
        for module in ("apscheduler.schedulers.base", "apscheduler.schedulers.twisted", "apscheduler.executors.base",
                       "apscheduler.job", "apscheduler.triggers.cron", "apscheduler.triggers.base"):
            aps_private |= set(re.findall(r"\b(_[a-z]\w*)\b", _source(module)))
        tree = ast.parse(inspect.getsource(cron))
        used = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
        used |= {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
        self.assertEqual(sorted(n for n in used & aps_private if not n.startswith("__")), sorted(PRIVATE_API))

    def test_private_executor_api_exists(self) -> None:
        """``BaseExecutor._do_submit_job(job, run_times)`` is abstract; ``_run_job_success(job_id, events)`` exists."""
        from apscheduler.executors.base import BaseExecutor

        self.assertIn("_do_submit_job", BaseExecutor.__abstractmethods__)
        self.assertEqual(list(inspect.signature(BaseExecutor._do_submit_job).parameters), ["self", "job", "run_times"])
        self.assertEqual(list(inspect.signature(BaseExecutor._run_job_success).parameters),
                         ["self", "job_id", "events"])
        # submit_job calls the hook before counting the instance: ReactorExecutor starts jobs after it.
        submit = inspect.getsource(BaseExecutor.submit_job)
        self.assertLess(submit.index("self._do_submit_job("), submit.index("self._instances[job.id] += 1"))

    def test_now_is_the_module_global_datetime(self) -> None:
        """apscheduler.schedulers.base reads now as ``datetime.now`` through its module global ``datetime``."""
        import importlib

        module = importlib.import_module(NOW_GLOBAL[0])
        self.assertIs(getattr(module, NOW_GLOBAL[1]), datetime.datetime)

    def test_now_is_reached_only_through_the_wrapped_methods(self) -> None:
        """Every public scheduler method that can reach ``datetime.now`` is one of cron.CLOCK_METHODS."""
        methods = _methods("apscheduler.schedulers.base", "apscheduler.schedulers.twisted")
        readers = {name for name, f in methods.items() if _reads_now(f)}
        self.assertTrue(readers, "the scan finds the readers")
        unsafe = set(readers)
        while True:  # callers of an unsafe method are unsafe, unless the call goes through a wrapped method
            more = {name for name, f in methods.items()
                    if name not in unsafe and _self_calls(f) & (unsafe - set(cron.CLOCK_METHODS))}
            if not more:
                break
            unsafe |= more
        public = sorted(name for name in unsafe if not name.startswith("_"))
        self.assertEqual([name for name in public if name not in cron.CLOCK_METHODS], [])
        self.assertEqual(sorted(set(cron.CLOCK_METHODS) - set(public)), [], "no method is wrapped needlessly")

    def test_twisted_scheduler_needs_only_what_the_clock_reactor_has(self) -> None:
        """TwistedScheduler takes ``reactor=`` and calls only callLater and callFromThread on it."""
        source = _source("apscheduler.schedulers.twisted")
        self.assertIn('config.pop("reactor"', source)
        called = set(re.findall(r"self\._reactor\.(\w+)", source))
        self.assertEqual(called, {"callLater", "callFromThread"})
        self.assertTrue(all(callable(getattr(cron._ClockReactor, name, None)) for name in called))
