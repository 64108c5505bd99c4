"""``server.workers: N`` — N processes serving the HTTP API on one port, to use every core.

The first process (the one started by systemd or by hand) binds the port, then starts N-1
helpers that inherit the listening socket and serve it too (``--role api --listen-fd``): the
kernel spreads connections over them. Only the first process runs the configured role's
delivery and cron, so ``max_concurrent`` per destination keeps its meaning. The helpers get
the resolved database and Redis addresses through the environment (so the embedded default
works too), are started again (after ``restart_delay``) when one dies, and are stopped with
SIGTERM when the first process stops — SIGKILL for any still running ``kill_after`` seconds
later. Helpers are spawned with ``reactor.spawnProcess`` and watched through their
``processEnded``: nothing here blocks the reactor. Binding the socket is blocking set-up done
before the reactor runs.
"""
from __future__ import annotations

import os
import socket
import sys
from typing import Any

from twisted.application import service
from twisted.internet import defer, error, protocol
from twisted.internet.interfaces import IDelayedCall, IReactorProcess, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

log = Logger()


def bind_listening_socket(host: str, port: int) -> socket.socket:
    """Bind and listen on ``host:port``; the socket is inheritable by child processes."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1" if host == "localhost" else host, port))
    sock.listen(1024)
    sock.setblocking(False)
    sock.set_inheritable(True)
    return sock


class _Helper(protocol.ProcessProtocol):
    """One helper process; tells its ``ApiHelpers`` when it ended."""

    def __init__(self, owner: ApiHelpers) -> None:
        self.owner = owner
        self.ended: defer.Deferred[None] = defer.Deferred()
        self.pid: int | None = None

    def connectionMade(self) -> None:  # noqa: N802
        self.pid = self.transport.pid if self.transport is not None else None

    def processEnded(self, reason: Failure) -> None:  # noqa: N802
        self.owner._ended(self, reason)
        self.ended.callback(None)

    def signal(self, name: str) -> bool:
        """Send signal ``name`` ("TERM", "KILL"); False when the process has already exited."""
        try:
            self.transport.signalProcess(name)  # type: ignore[union-attr]
        except error.ProcessExitedAlready:
            return False
        return True


class ApiHelpers:
    """The N-1 helper processes sharing the first process's listening socket.

    :param reactor: spawns the helpers (``IReactorProcess``) and times restarts and the SIGKILL
        (``IReactorTime``).
    :param count: how many helpers.
    :param fd: the listening socket's file descriptor, passed to each helper as the same number.
    :param config_path: the configuration file the helpers read (None: environment only).
    :param config: the resolved configuration (database and Redis addresses, shutdown timeout).
    :param kill_after: seconds between SIGTERM and SIGKILL at stop (default: the configuration's
        ``server.shutdown_timeout`` plus 5 s, the time a helper has to stop in order and exit).
    :param restart_delay: seconds before a helper that died is started again.
    """

    def __init__(self, reactor: Any, count: int, fd: int, config_path: str | None, config: Any, *,
                 kill_after: float | None = None, restart_delay: float = 2.0) -> None:
        self.reactor = reactor
        self.count = count
        self.fd = fd
        self.config_path = config_path
        self.env = dict(os.environ, DHIS2GW_DB=config.database.uri, DHIS2GW_REDIS=config.server.redis_address)
        self.kill_after = kill_after if kill_after is not None else float(config.server.shutdown_timeout) + 5.0
        self.restart_delay = restart_delay
        self.helpers: list[_Helper] = []
        self.restarts = 0
        self.stopping = False
        self._pending_restarts: list[IDelayedCall] = []

    @property
    def _process_reactor(self) -> IReactorProcess:
        return self.reactor  # type: ignore[no-any-return]

    @property
    def _clock(self) -> IReactorTime:
        return self.reactor  # type: ignore[no-any-return]

    def _args(self) -> list[str]:
        args = [sys.executable, "-m", "dhis2gw.cli", "--role", "api", "--listen-fd", str(self.fd)]
        if self.config_path:
            args[3:3] = ["--config", self.config_path]
        return args

    def _spawn(self) -> _Helper:
        helper = _Helper(self)
        args = self._args()
        # The helper shares this process's stdin/stdout/stderr (one log stream) and gets the
        # listening socket under the same descriptor number.
        self._process_reactor.spawnProcess(helper, args[0], args, env=self.env,
                                           childFDs={0: 0, 1: 1, 2: 2, self.fd: self.fd})
        self.helpers.append(helper)
        return helper

    def start(self) -> None:
        """Start the helpers."""
        for _ in range(self.count):
            self._spawn()
        log.info("Started {n} API helper processes sharing the port", n=self.count)

    def _ended(self, helper: _Helper, reason: Failure) -> None:
        if helper in self.helpers:
            self.helpers.remove(helper)
        if self.stopping:
            return
        code = getattr(reason.value, "exitCode", None)
        signal = getattr(reason.value, "signal", None)
        log.warn("API helper {pid} exited ({how}); starting another in {delay:.0f} s", pid=helper.pid,
                 how=f"signal {signal}" if signal else f"code {code}", delay=self.restart_delay)

        def restart() -> None:
            self._pending_restarts.remove(call)
            if not self.stopping:
                self.restarts += 1
                self._spawn()

        call = self._clock.callLater(self.restart_delay, restart)
        self._pending_restarts.append(call)

    def stop(self) -> defer.Deferred[None]:
        """SIGTERM every helper; the Deferred fires when all have ended (each stops in order like
        this process). Any still running ``kill_after`` seconds later gets SIGKILL."""
        self.stopping = True
        for call in self._pending_restarts:
            call.cancel()
        self._pending_restarts.clear()
        running = list(self.helpers)
        if not running:
            return defer.succeed(None)
        for helper in running:
            helper.signal("TERM")

        def kill() -> None:
            stuck = [h for h in running if not h.ended.called]
            log.warn("{n} API helper processes still running {seconds:.0f} s after SIGTERM; killing them",
                     n=len(stuck), seconds=self.kill_after)
            for helper in stuck:
                helper.signal("KILL")

        killer = self._clock.callLater(self.kill_after, kill)
        done = defer.gatherResults([h.ended for h in running])

        def ended(result: object) -> None:
            if killer.active():
                killer.cancel()

        return done.addCallback(ended)


class ApiHelperService(service.Service):
    """The helpers as a service of the gateway's tree: started with it, stopped first (they serve
    the same port), and the owner of the shared listening socket, closed once they have ended."""

    name = "api-helpers"

    def __init__(self, helpers: ApiHelpers, sock: socket.socket) -> None:
        self.helpers = helpers
        self.sock = sock

    def startService(self) -> None:  # noqa: N802
        super().startService()
        self.helpers.start()

    def stopService(self) -> defer.Deferred[None]:  # noqa: N802
        super().stopService()

        def close_socket(result: object) -> object:
            self.sock.close()
            return result

        return self.helpers.stop().addBoth(close_socket)
