"""Helpers for plugin tests: a PluginContext assembled from test parts, and temporary plugin directories."""
from __future__ import annotations

import os
import secrets
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from twisted.logger import globalLogPublisher

from dhis2gw.config import Config, load_config
from dhis2gw.delivery.observers import OutcomeObservers
from dhis2gw.runtime.lifecycle import OrderedServices
from dhis2gw.storage.submissions import SubmissionStore
from dhis2gw.storage.users import UserStore
from dhis2gw.wiring.context import PluginContext, QueueOperations

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "plugins"


def make_config(plugins_dir: Path = SHIPPED, env: dict[str, str] | None = None) -> Config:
    """A real configuration whose plugins directory is ``plugins_dir`` (plus ``env`` settings)."""
    environ = {"DHIS2GW_PLUGINS_DIR": str(plugins_dir), "DHIS2GW_JWT_SECRET": "s" * 40}
    environ.update(env or {})
    return load_config(None, environ)


def make_context(reactor: Any, *, config: Config | None = None, role: str = "api", db: Any = None,
                 submissions: SubmissionStore | None = None, queue: Any = None, dispatcher: Any = None,
                 outcomes: OutcomeObservers | None = None, service: OrderedServices | None = None,
                 dhis2: dict[str, Any] | None = None) -> PluginContext:
    """A PluginContext over test parts, as the composition root builds it (services join ``service``)."""
    tree = service if service is not None else OrderedServices()
    return PluginContext(
        reactor=reactor, config=config or make_config(), role=role, environ=os.environ,
        submissions=submissions or SubmissionStore(db), users=UserStore(db), dhis2=dict(dhis2 or {}),
        queue=QueueOperations(queue, dispatcher), outcomes=outcomes if outcomes is not None else OutcomeObservers(),
        ingest_checks=[], add_service=lambda child: child.setServiceParent(tree))


class PluginDir:
    """A temporary plugins directory whose modules get unique names (sys.modules is process-wide)."""

    def __init__(self) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="dhis2gw-plugins-"))
        self.modules: list[str] = []

    def write(self, stem: str, source: str) -> str:
        """Write ``<stem>_<random>.py``; return the module's short name."""
        name = f"{stem}_{secrets.token_hex(3)}"
        (self.path / f"{name}.py").write_text(source)
        self.modules.append(name)
        return name

    def cleanup(self) -> None:
        import dhis2gw.plugins as package

        if str(self.path) in package.__path__:
            package.__path__.remove(str(self.path))
        for name in self.modules:
            sys.modules.pop(f"dhis2gw.plugins.{name}", None)
        shutil.rmtree(self.path, ignore_errors=True)


class LogCapture:
    """Collects twisted.logger events while active."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(self.events.append)

    def stop(self) -> None:
        globalLogPublisher.removeObserver(self.events.append)

    def texts(self, level: str | None = None) -> list[str]:
        from twisted.logger import formatEvent

        return [formatEvent(e) for e in self.events if level is None or e.get("log_level").name == level]


def unset_env(*names: str) -> dict[str, str | None]:
    """Remove environment variables, returning their old values (for restore_env)."""
    return {n: os.environ.pop(n, None) for n in names}


def restore_env(saved: dict[str, str | None]) -> None:
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def isolate_plugin_path(testcase: Any) -> None:
    """Restore ``dhis2gw.plugins.__path__`` after the test (the loader appends directories to it)."""
    import dhis2gw.plugins as package

    saved = list(package.__path__)
    testcase.addCleanup(lambda: package.__path__.__setitem__(slice(None), saved))


async def create_user(db: Any, username: str, role: str = "submitter") -> int:
    """Insert a user row (the submissions table references users); return its id."""
    from dhis2gw.dhis2.uids import generate_uid
    from dhis2gw.storage.users import UserStore

    row = await UserStore(db).create(uid=generate_uid(), username=username, password_hash="x", role=role)
    return int(row["id"])
