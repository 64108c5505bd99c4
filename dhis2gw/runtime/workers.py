"""``server.workers: N`` — N processes serving the HTTP API on one port, to use every core.

The first process (the one started by systemd or by hand) binds the port, then starts N-1
helpers that inherit the listening socket and serve it too (``--role api --listen-fd``): the
kernel spreads connections over them. Only the first process runs the configured role's
delivery and cron, so ``max_concurrent`` per destination keeps its meaning. The helpers get
the resolved database and Redis addresses through the environment (so the embedded default
works too), are stopped with SIGTERM when the first process stops, and are restarted if one
dies. This module does blocking socket/process set-up before the reactor runs.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from typing import Any, Optional

from twisted.internet import task
from twisted.logger import Logger

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


class ApiHelpers:
    """The N-1 helper processes sharing the first process's listening socket."""

    def __init__(self, reactor: Any, count: int, fd: int, config_path: Optional[str], config: Any) -> None:
        self.reactor = reactor
        self.count = count
        self.fd = fd
        self.config_path = config_path
        self.env = dict(os.environ, DHIS2GW_DB=config.database.uri, DHIS2GW_REDIS=config.server.redis_address)
        self.procs: list[subprocess.Popen[bytes]] = []
        self.stopping = False
        self._watch = task.LoopingCall(self._restart_dead)
        self._watch.clock = reactor

    def _spawn(self) -> subprocess.Popen[bytes]:
        args = [sys.executable, "-m", "dhis2gw.cli", "--role", "api", "--listen-fd", str(self.fd)]
        if self.config_path:
            args[3:3] = ["--config", self.config_path]
        return subprocess.Popen(args, pass_fds=(self.fd,), env=self.env)

    def start(self) -> None:
        """Start the helpers and watch them."""
        self.procs = [self._spawn() for _ in range(self.count)]
        log.info("Started {n} API helper processes sharing the port", n=self.count)
        self._watch.start(2.0, now=False)

    def _restart_dead(self) -> None:
        for i, proc in enumerate(self.procs):
            if proc.poll() is not None and not self.stopping:
                log.warn("API helper {pid} exited with {code}; starting another", pid=proc.pid, code=proc.returncode)
                self.procs[i] = self._spawn()

    def stop(self) -> None:
        """SIGTERM every helper and reap them (they stop in order like the main process)."""
        self.stopping = True
        if self._watch.running:
            self._watch.stop()
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
