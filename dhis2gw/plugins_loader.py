"""Plugin discovery and registration (composition-root installer ``install(gateway)``).

Discovery is Twisted's: ``getPlugins(ISubmissionKind | ICronJob | IApiExtension, dhis2gw.plugins)``
over ``dhis2gw.plugins.__path__``, which includes the configured ``server.plugins_directory``.
Every object found is checked with ``zope.interface.verify.verifyObject``; the built-in kinds
already in ``gateway.kinds`` (aggregate, tracker, orgunit) go through the same check and are
listed the same way.

A broken plugin never stops the gateway: a module that fails to import, an object that fails
``verifyObject``, a ``setup`` that raises or a name already taken is skipped with ONE log line
naming the plugin and the error, and is listed under ``skipped`` by ``GET /api/v2/plugins``.

Registration:

* ``ISubmissionKind`` → ``gateway.kinds[name]`` (ingest then serves ``POST /api/v2/submissions/<name>``);
* ``IApiExtension`` → ``gateway.mount(plugin.api_area(gateway), prefix="/api/v2/ext/<name>")``;
* ``ICronJob`` → ``gateway.parts["cron_jobs"]`` (scheduled by the cron service at start-up).

A plugin object may also have a ``setup(gateway)`` method: it is called once, before the object
is registered, to take what it needs from the gateway (clients, stores, services, outcome
observers). Delivery outcomes reach plugins through ``outcome_observers(gateway)``.
"""
from __future__ import annotations

import importlib
import inspect
import os
import re
import sys
import types
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from twisted.logger import Logger
from twisted.plugin import IPlugin, getPlugins
from twisted.python.modules import getModule
from zope.interface.exceptions import Invalid
from zope.interface.verify import verifyObject

from dhis2gw.api.routing import OPERATOR, Call, route
from dhis2gw.interfaces import IApiExtension, ICronJob, ISubmissionKind

log = Logger(namespace="dhis2gw.plugins")

INTERFACES: tuple[tuple[str, Any], ...] = (
    ("ISubmissionKind", ISubmissionKind), ("ICronJob", ICronJob), ("IApiExtension", IApiExtension))
PACKAGE = "dhis2gw.plugins"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


@dataclass
class PluginRecord:
    """One loaded (or skipped) plugin object, as ``GET /api/v2/plugins`` lists it."""

    name: str
    interfaces: list[str] = field(default_factory=list)
    origin: Optional[str] = None
    module: Optional[str] = None
    builtin: bool = False
    error: Optional[str] = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "interfaces": self.interfaces, "origin": self.origin,
                               "module": self.module, "builtin": self.builtin}
        if self.error is not None:
            out["error"] = self.error
        return out


@dataclass
class PluginReport:
    """What the loader did: loaded objects, skipped ones, and the directories searched."""

    loaded: list[PluginRecord] = field(default_factory=list)
    skipped: list[PluginRecord] = field(default_factory=list)
    directories: list[str] = field(default_factory=list)

    def skip(self, name: str, origin: Optional[str], error: str, module: Optional[str] = None,
             interfaces: Optional[list[str]] = None) -> None:
        """Record and log (one line) a plugin that was not loaded."""
        self.skipped.append(PluginRecord(name, interfaces or [], origin, module, error=error))
        log.error("Plugin {name} ({origin}) skipped: {error}", name=name, origin=origin or "?", error=error)


def _one_line(error: BaseException) -> str:
    text = str(error).strip().replace("\n", " ")
    text = re.sub(r"\s+", " ", text)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _module_file(module_name: Optional[str]) -> Optional[str]:
    module = sys.modules.get(module_name or "")
    path = getattr(module, "__file__", None)
    return os.path.abspath(path) if path else None


def preflight(report: PluginReport) -> dict[int, tuple[str, str]]:
    """Import every plugin module once, catching what breaks.

    Returns ``id(object) → (module name, attribute)`` for the IPlugin providers found. A module
    that fails to import is logged in one line and replaced in ``sys.modules`` by an empty
    placeholder, so Twisted's own import attempt inside ``getPlugins`` finds nothing instead of
    logging a second, multi-line traceback.
    """
    where: dict[int, tuple[str, str]] = {}
    package = importlib.import_module(PACKAGE)
    report.directories = [p for p in package.__path__ if os.path.isdir(p)]
    for module_info in getModule(PACKAGE).iterModules():
        name = module_info.name
        origin = module_info.filePath.path
        short = name.rsplit(".", 1)[-1]
        try:
            module = importlib.import_module(name)
        except Exception as e:  # noqa: BLE001 - any failure of third-party code is a skip
            report.skip(short, origin, f"import failed: {_one_line(e)}", module=name)
            placeholder = types.ModuleType(name, f"placeholder for the broken plugin module {name}")
            placeholder.__file__ = origin
            sys.modules[name] = placeholder
            setattr(package, short, placeholder)  # namedAny reaches it as an attribute of the package
            continue
        for attr, value in vars(module).items():
            if IPlugin.providedBy(value):
                where[id(value)] = (name, attr)
    return where


def _plugin_name(plugin: Any, fallback: str) -> str:
    name = getattr(plugin, "name", None)
    return name if isinstance(name, str) and name else fallback


def discover(report: PluginReport) -> list[tuple[Any, list[str], str, Optional[str]]]:
    """Find plugin objects with ``getPlugins``: ``(object, interface names, module, origin)`` each."""
    where = preflight(report)
    package = importlib.import_module(PACKAGE)
    found: dict[int, tuple[Any, list[str], str, Optional[str]]] = {}
    for iname, interface in INTERFACES:
        for plugin in getPlugins(interface, package):
            module = where.get(id(plugin), (type(plugin).__module__, ""))[0]
            entry = found.setdefault(id(plugin), (plugin, [], module, _module_file(module)))
            if iname not in entry[1]:
                entry[1].append(iname)
    return list(found.values())


def verify(plugin: Any, interface_names: list[str]) -> Optional[str]:
    """None when ``plugin`` fully provides every named interface, else one line saying why not."""
    interfaces = dict(INTERFACES)
    for iname in interface_names:
        try:
            verifyObject(interfaces[iname], plugin)
        except Invalid as e:
            return f"does not implement {iname}: {_one_line(e)}"
    return None


# --- outcome observers -------------------------------------------------------------------------
Observer = Callable[[str, dict[str, Any], Any, str], None]


def outcome_observers(gateway: Any) -> list[Observer]:
    """The list of callables told about every recorded delivery outcome (created on first use).

    Each is called as ``observer(destination, row, outcome, "recorded")`` in the worker, after
    the outcome is committed. It must return quickly (start any I/O as a Deferred of its own)
    and never raise; an exception is logged and ignored.
    """
    observers: Optional[list[Observer]] = gateway.parts.get("outcome_observers")
    if observers is not None:
        return observers
    observers = gateway.parts["outcome_observers"] = []
    dispatcher = gateway.dispatcher
    if dispatcher is None:
        return observers
    for worker in dispatcher.workers.values():
        previous = worker.observer

        def fan_out(dest: str, row: dict[str, Any], outcome: Any, event: str,
                    previous: Optional[Observer] = previous) -> None:
            for observer in ([previous] if previous is not None else []) + list(observers):
                try:
                    observer(dest, row, outcome, event)
                except Exception:  # noqa: BLE001 - an observer must never break delivery
                    log.failure("outcome observer {observer!r} failed", observer=observer)

        worker.observer = fan_out
    return observers


# --- registration ------------------------------------------------------------------------------
def _register(gateway: Any, plugin: Any, interface_names: list[str], name: str, mounted: set[str]) -> None:
    """Add one verified object to the gateway (raises ValueError for a name clash)."""
    if "ISubmissionKind" in interface_names and name in gateway.kinds and gateway.kinds[name] is not plugin:
        raise ValueError(f"a submission kind named {name!r} is already registered")
    if "IApiExtension" in interface_names:
        if not _NAME.match(name):
            raise ValueError(f"extension name {name!r} must match [a-z0-9][a-z0-9_-]*")
        if name in mounted:
            raise ValueError(f"an API extension named {name!r} is already mounted")
    if "ICronJob" in interface_names:
        jobs = gateway.parts.setdefault("cron_jobs", [])
        if any(getattr(j, "name", None) == name for j in jobs):
            raise ValueError(f"a cron job named {name!r} is already registered")
    setup = getattr(plugin, "setup", None)
    if callable(setup):
        setup(gateway)
    area = plugin.api_area(gateway) if "IApiExtension" in interface_names else None
    if "ISubmissionKind" in interface_names:
        gateway.kinds[name] = plugin
    if area is not None:
        gateway.mount(area, prefix=f"/api/v2/ext/{name}")
        mounted.add(name)
    if "ICronJob" in interface_names:
        gateway.parts["cron_jobs"].append(plugin)


def load_plugins(gateway: Any) -> PluginReport:
    """Verify the built-in kinds, then discover, verify and register every plugin."""
    from dhis2gw import plugins as plugin_package

    report = PluginReport()
    directory = gateway.config.server.plugins_directory
    if not plugin_package.extend_path(directory):
        log.info("Plugin directory {directory} does not exist; no drop-in plugins", directory=directory)
    for name, kind in list(gateway.kinds.items()):
        origin = inspect.getsourcefile(type(kind))
        error = verify(kind, ["ISubmissionKind"])
        if error is None and getattr(kind, "name", None) != name:
            error = f"registered as {name!r} but its name is {getattr(kind, 'name', None)!r}"
        if error is not None:
            del gateway.kinds[name]
            report.skip(name, origin, error, type(kind).__module__, ["ISubmissionKind"])
            continue
        report.loaded.append(PluginRecord(name, ["ISubmissionKind"], origin, type(kind).__module__, builtin=True))
    outcome_observers(gateway)
    mounted: set[str] = set()
    for plugin, interface_names, module, origin in discover(report):
        name = _plugin_name(plugin, module.rsplit(".", 1)[-1])
        error = verify(plugin, interface_names)
        if error is None:
            try:
                _register(gateway, plugin, interface_names, name, mounted)
            except Exception as e:  # noqa: BLE001 - a plugin's setup must not stop the gateway
                error = f"registration failed: {_one_line(e)}"
        if error is not None:
            report.skip(name, origin, error, module, interface_names)
            continue
        report.loaded.append(PluginRecord(name, interface_names, origin, module))
        log.debug("Plugin {name} loaded ({interfaces}) from {origin}", name=name,
                  interfaces=", ".join(interface_names), origin=origin)
    plugins = [r.name for r in report.loaded if not r.builtin]
    if plugins:  # one line for all of them (each one's origin at debug)
        log.info("Plugins loaded: {names}", names=", ".join(plugins))
    return report


class PluginsApi:
    """``GET /api/v2/plugins``: what the loader registered and what it skipped."""

    def __init__(self, report: PluginReport) -> None:
        self.report = report

    @route("GET", "/plugins", roles=OPERATOR, summary="Loaded plugins and built-in kinds, and skipped plugins",
           tags=("plugins",))
    async def list_plugins(self, call: Call) -> dict[str, Any]:
        return {"plugins": [r.to_json() for r in self.report.loaded],
                "skipped": [r.to_json() for r in self.report.skipped],
                "directories": list(self.report.directories)}


def install(gateway: Any) -> None:
    """Load plugins into ``gateway`` and mount ``GET /api/v2/plugins`` (composition-root installer)."""
    report = load_plugins(gateway)
    gateway.parts["plugins"] = report
    gateway.mount(PluginsApi(report))
