"""What both entry points run: ``twistd dhis2gw`` (`dhis2gw.tap`) and ``dhis2gw run`` (`dhis2gw.cli`).

`make_service` turns the options every entry point shares (configuration file, role,
``--demo``, an inherited listening socket) into the gateway of `dhis2gw.wiring.root`, whose
service tree holds everything: the demo simulator, the gateway's services, the API helper
processes of ``server.workers`` and the demo's users and mappings. `twistd_service` is the same
for twistd, with the global reactor.
"""
from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

from twisted.application import service
from twisted.logger import Logger

from dhis2gw.config import Config, ConfigError, ensure_dev_secret, load_config
from dhis2gw.runtime.embedded import StateDirBusy, start_embedded

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


def make_service(config: Config, reactor: Any, *, config_path: str | None, role: str = "all",
                 demo: bool = False, listen_fd: int | None = None) -> Gateway:
    """The gateway of this process, its service tree (``gateway.service``) ready to start.

    Blocking, before the reactor runs: starts the embedded servers the configuration asks for
    (raises ``StateDirBusy`` when another gateway holds the state directory) and binds the
    listening socket that ``server.workers`` API helper processes share; then
    `dhis2gw.wiring.root.build_gateway` builds the tree (demo and helpers included).
    """
    from dhis2gw.wiring.root import build_gateway

    config, embedded = start_embedded(config)
    helpers = None
    if listen_fd is None and config.server.workers > 1 and role in ("all", "api"):
        from dhis2gw.runtime.workers import ApiHelpers, ApiHelperService, bind_listening_socket

        sock = bind_listening_socket(config.server.host, config.server.port)
        listen_fd = sock.fileno()
        helpers = ApiHelperService(ApiHelpers(reactor, config.server.workers - 1, listen_fd, config_path, config),
                                   sock)
    return build_gateway(config, reactor, role, embedded, listen_fd=listen_fd, demo=demo, helpers=helpers)


def twistd_service(options: Any) -> service.IService:
    """``twistd dhis2gw``: the service tree of `make_service` on the global reactor."""
    from twisted.internet import reactor

    config = load_config_or_exit(options["config"])
    try:
        gateway = make_service(config, reactor, config_path=options["config"], role=options["role"],
                               demo=bool(options["demo"]))
    except StateDirBusy as e:
        sys.stderr.write(f"{e}\n")
        raise SystemExit(1) from None
    return gateway.service
