"""What both entry points run: ``twistd dhis2gw`` (`dhis2gw.tap`) and ``dhis2gw run`` (`dhis2gw.cli`).

`make_service` turns the options every entry point shares (configuration file, role,
``--demo``, an inherited listening socket) into one service tree: the demo simulator, the
gateway of `dhis2gw.wiring.root`, the API helper processes of ``server.workers`` and the demo's
users and mappings. `twistd_service` is the same for twistd, with the global reactor.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger

from dhis2gw.config import Config, ConfigError, ensure_dev_secret, load_config
from dhis2gw.runtime.embedded import StateDirBusy, start_embedded
from dhis2gw.runtime.lifecycle import OrderedServices

if TYPE_CHECKING:  # the root imports every feature: loaded only to run a gateway
    from dhis2gw.wiring.root import Gateway

log = Logger()


def load_config_or_exit(path: str | None) -> Config:
    """The configuration at ``path`` (None: built-in defaults and the environment); exits with one
    line on stderr when it is wrong."""
    try:
        config = ensure_dev_secret(load_config(path, os.environ))
    except ConfigError as e:
        sys.stderr.write(f"dhis2gw: configuration error: {e}\n")
        raise SystemExit(2) from None
    if config.ignored_keys:
        log.warn("Ignoring keys of the original dhis2gw that have no effect here: {keys}",
                 keys=", ".join(config.ignored_keys))
    return config


class Hooks(service.Service):
    """A service that calls ``start()`` when started and ``stop()`` (may return a Deferred) when stopped."""

    def __init__(self, name: str, start: Callable[[], Any], stop: Callable[[], Any]) -> None:
        self.name = name
        self._start = start
        self._stop = stop

    def startService(self) -> None:  # noqa: N802
        super().startService()
        self._start()

    def stopService(self) -> Any:  # noqa: N802
        super().stopService()
        return defer.maybeDeferred(self._stop)


def make_service(config: Config, reactor: Any, *, config_path: str | None, role: str = "all",
                 demo: bool = False, listen_fd: int | None = None) -> tuple[Gateway, service.MultiService]:
    """The whole process as one service tree (see the module docstring).

    Blocking before the reactor runs: starts the embedded servers the configuration asks for
    (raises ``StateDirBusy`` when another gateway holds the state directory) and binds the shared
    listening socket of ``server.workers``.
    """
    from dhis2gw.wiring.root import build_gateway

    config, embedded = start_embedded(config)
    top = OrderedServices()
    if demo:
        from dhis2gw.runtime.devmode import DemoSimulator

        DemoSimulator(reactor, config).setServiceParent(top)  # up before the gateway, down after it
    helpers = None
    if listen_fd is None and config.server.workers > 1 and role in ("all", "api"):
        from dhis2gw.runtime.workers import ApiHelpers, bind_listening_socket

        # One listening socket for this process and its helpers; it lives as long as the tree.
        sock = bind_listening_socket(config.server.host, config.server.port)
        listen_fd = sock.fileno()
        helpers = ApiHelpers(reactor, config.server.workers - 1, listen_fd, config_path, config)
    gateway = build_gateway(config, reactor, role, embedded, listen_fd=listen_fd)
    gateway.service.setServiceParent(top)
    if helpers is not None:
        def stop_helpers() -> defer.Deferred[None]:
            def close_socket(result: object) -> object:
                sock.close()
                return result

            return defer.maybeDeferred(helpers.stop).addBoth(close_socket)

        Hooks("api-helpers", helpers.start, stop_helpers).setServiceParent(top)  # stopped first
    if demo:
        from dhis2gw.runtime.devmode import DemoBootstrap

        DemoBootstrap(gateway).setServiceParent(top)
    return gateway, top


def twistd_service(options: Any) -> service.IService:
    """``twistd dhis2gw``: the service tree of `make_service` on the global reactor."""
    from twisted.internet import reactor

    config = load_config_or_exit(options["config"])
    try:
        _, top = make_service(config, reactor, config_path=options["config"], role=options["role"],
                              demo=bool(options["demo"]))
    except StateDirBusy as e:
        sys.stderr.write(f"{e}\n")
        raise SystemExit(1) from None
    return top
