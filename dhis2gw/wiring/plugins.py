"""Plugin discovery and registration: ``load_plugins(context, kinds, directory)``.

Discovery is Twisted's: ``getPlugins(ISubmissionKind | ICronJob | IApiExtension, dhis2gw.plugins)``
over ``dhis2gw.plugins.__path__``, which includes the configured ``server.plugins_directory``.
Every object found is checked with ``zope.interface.verify.verifyObject``; the built-in kinds
already in ``kinds`` (aggregate, tracker, orgunit) go through the same check and are listed the
same way.

A broken plugin never stops the gateway: a module that fails to import, an object that fails
``verifyObject``, a ``setup`` that raises or a name already taken is skipped with ONE log line
naming the plugin and the error, and is listed under ``skipped`` by ``GET /api/v2/plugins``.

Registration (the composition root acts on the returned :class:`PluginLoad`):

* ``ISubmissionKind`` → ``kinds[name]`` (ingest then serves ``POST /api/v2/submissions/<name>``);
* ``IApiExtension`` → ``PluginLoad.areas``: ``("/api/v2/ext/<name>", plugin.api_area(context))``;
* ``ICronJob`` → ``PluginLoad.cron_jobs`` (the cron calls ``await job.run(context)``).

A plugin object may also have a ``setup(context)`` method: it is called once, before the object
is registered, with the :class:`dhis2gw.wiring.context.PluginContext` — the only thing plugins
are ever given.
"""
from __future__ import annotations

import importlib
import inspect
import os
import re
import sys
import types
from dataclasses import dataclass, field
from typing import Any

from twisted.logger import Logger
from twisted.plugin import IPlugin, getPlugins
from twisted.python.modules import getModule
from zope.interface.exceptions import Invalid
from zope.interface.verify import verifyObject

from dhis2gw.interfaces import IApiExtension, ICronJob, ISubmissionKind
from dhis2gw.wiring.context import PluginContext

log = Logger(namespace="dhis2gw.plugins")

INTERFACES: tuple[tuple[str, Any], ...] = (
    ("ISubmissionKind", ISubmissionKind), ("ICronJob", ICronJob), ("IApiExtension", IApiExtension))
PACKAGE = "dhis2gw.plugins"
#: Where an ``IApiExtension`` named ``<name>`` is mounted.
EXTENSION_PREFIX = "/api/v2/ext/"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


@dataclass
class PluginRecord:
    """One loaded (or skipped) plugin object, as ``GET /api/v2/plugins`` lists it."""

    name: str
    interfaces: list[str] = field(default_factory=list)
    origin: str | None = None
    module: str | None = None
    builtin: bool = False
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The record as the API shows it (``error`` only for a skipped one)."""
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

    def skip(self, name: str, origin: str | None, error: str, module: str | None = None,
             interfaces: list[str] | None = None) -> None:
        """Record and log (one line) a plugin that was not loaded."""
        self.skipped.append(PluginRecord(name, interfaces or [], origin, module, error=error))
        log.error("Plugin {name} ({origin}) skipped: {error}", name=name, origin=origin or "?", error=error)


@dataclass
class PluginLoad:
    """The result of :func:`load_plugins`: the report, and what the composition root must wire.

    :param areas: ``(prefix, area)`` to mount on the router (``@route`` methods of ``area`` under
        ``prefix``, which is ``/api/v2/ext/<name>``).
    :param cron_jobs: ``ICronJob`` providers for the cron: ``await job.run(context)`` on
        ``job.cron_expression`` under the job name ``job.name``.
    """

    report: PluginReport
    areas: list[tuple[str, Any]] = field(default_factory=list)
    cron_jobs: list[Any] = field(default_factory=list)


def _one_line(error: BaseException) -> str:
    text = str(error).strip().replace("\n", " ")
    text = re.sub(r"\s+", " ", text)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _module_file(module_name: str | None) -> str | None:
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


def discover(report: PluginReport) -> list[tuple[Any, list[str], str, str | None]]:
    """Find plugin objects with ``getPlugins``: ``(object, interface names, module, origin)`` each."""
    where = preflight(report)
    package = importlib.import_module(PACKAGE)
    found: dict[int, tuple[Any, list[str], str, str | None]] = {}
    for iname, interface in INTERFACES:
        for plugin in getPlugins(interface, package):
            module = where.get(id(plugin), (type(plugin).__module__, ""))[0]
            entry = found.setdefault(id(plugin), (plugin, [], module, _module_file(module)))
            if iname not in entry[1]:
                entry[1].append(iname)
    return list(found.values())


def verify(plugin: Any, interface_names: list[str]) -> str | None:
    """None when ``plugin`` fully provides every named interface, else one line saying why not."""
    interfaces = dict(INTERFACES)
    for iname in interface_names:
        try:
            verifyObject(interfaces[iname], plugin)
        except Invalid as e:
            return f"does not implement {iname}: {_one_line(e)}"
    return None


def _register(context: PluginContext, kinds: dict[str, Any], load: PluginLoad, plugin: Any,
              interface_names: list[str], name: str) -> None:
    """Set up one verified object and add it to ``kinds`` / ``load`` (ValueError for a name clash)."""
    prefix = EXTENSION_PREFIX + name
    if "ISubmissionKind" in interface_names and name in kinds and kinds[name] is not plugin:
        raise ValueError(f"a submission kind named {name!r} is already registered")
    if "IApiExtension" in interface_names:
        if not _NAME.match(name):
            raise ValueError(f"extension name {name!r} must match [a-z0-9][a-z0-9_-]*")
        if any(mounted == prefix for mounted, _ in load.areas):
            raise ValueError(f"an API extension named {name!r} is already mounted")
    if "ICronJob" in interface_names and any(getattr(j, "name", None) == name for j in load.cron_jobs):
        raise ValueError(f"a cron job named {name!r} is already registered")
    setup = getattr(plugin, "setup", None)
    if callable(setup):
        setup(context)
    area = plugin.api_area(context) if "IApiExtension" in interface_names else None
    if "ISubmissionKind" in interface_names:
        kinds[name] = plugin
    if area is not None:
        load.areas.append((prefix, area))
    if "ICronJob" in interface_names:
        load.cron_jobs.append(plugin)


def _verify_builtin_kinds(kinds: dict[str, Any], report: PluginReport) -> None:
    """Check the kinds already registered like plugins; drop (and report) those that fail."""
    for name, kind in list(kinds.items()):
        origin = inspect.getsourcefile(type(kind))
        error = verify(kind, ["ISubmissionKind"])
        if error is None and getattr(kind, "name", None) != name:
            error = f"registered as {name!r} but its name is {getattr(kind, 'name', None)!r}"
        if error is not None:
            del kinds[name]
            report.skip(name, origin, error, type(kind).__module__, ["ISubmissionKind"])
            continue
        report.loaded.append(PluginRecord(name, ["ISubmissionKind"], origin, type(kind).__module__, builtin=True))


def load_plugins(context: PluginContext, kinds: dict[str, Any], directory: str) -> PluginLoad:
    """Verify the built-in ``kinds``, then discover, verify, set up and register every plugin.

    ``directory`` is the configured plugins directory (``server.plugins_directory``). Plugin kinds
    are added to ``kinds`` (the dict ingest and the dispatcher share); API areas and cron jobs are
    returned in the :class:`PluginLoad` for the caller to mount and schedule.
    """
    from dhis2gw import plugins as plugin_package

    load = PluginLoad(PluginReport())
    report = load.report
    if not plugin_package.extend_path(directory):
        log.info("Plugin directory {directory} does not exist; no drop-in plugins", directory=directory)
    _verify_builtin_kinds(kinds, report)
    for plugin, interface_names, module, origin in discover(report):
        name = _plugin_name(plugin, module.rsplit(".", 1)[-1])
        error = verify(plugin, interface_names)
        if error is None:
            try:
                _register(context, kinds, load, plugin, interface_names, name)
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
    return load
