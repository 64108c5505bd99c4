"""``ApiHelpers`` (``server.workers``) on a fake process reactor with a ``task.Clock``: spawning with the
listening socket, restart after a crash, and stop = SIGTERM, then SIGKILL after the timeout, never blocking."""
from __future__ import annotations

import sys
from types import SimpleNamespace
from typing import Any

from twisted.internet import error
from twisted.internet.interfaces import IProcessTransport, IReactorProcess
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from dhis2gw.runtime.workers import ApiHelpers

LISTEN_FD = 7
SIGNALS = {"TERM": 15, "KILL": 9}


@implementer(IProcessTransport)
class FakeProcess:
    """A spawned process: records the signals it gets; obeys SIGTERM unless told to ignore it."""

    def __init__(self, reactor: FakeProcessReactor, proto: Any, args: list[str], env: dict[str, str],
                 child_fds: dict[int, Any], pid: int) -> None:
        self.reactor, self.proto, self.args, self.env, self.child_fds = reactor, proto, args, env, child_fds
        self.pid: int | None = pid
        self.signals: list[str] = []
        self.ignores_term = False

    def signalProcess(self, signalID: Any) -> None:  # noqa: N802,N803
        if self.pid is None:
            raise error.ProcessExitedAlready()
        self.signals.append(signalID)
        if signalID == "KILL" or (signalID == "TERM" and not self.ignores_term):
            self.end(signal=SIGNALS[signalID])

    def end(self, code: int | None = None, signal: int | None = None) -> None:
        """The process exits (with ``code``) or dies of ``signal``; its protocol is told."""
        self.pid = None
        reason = error.ProcessDone(0) if code == 0 else error.ProcessTerminated(code, signal)
        self.proto.processEnded(Failure(reason))

    # The rest of IProcessTransport, unused by ApiHelpers.
    def closeStdin(self) -> None: ...  # noqa: N802
    def closeStdout(self) -> None: ...  # noqa: N802
    def closeStderr(self) -> None: ...  # noqa: N802
    def closeChildFD(self, descriptor: int) -> None: ...  # noqa: N802
    def writeToChild(self, childFD: int, data: bytes) -> None: ...  # noqa: N802,N803
    def loseConnection(self) -> None: ...  # noqa: N802
    def write(self, data: bytes) -> None: ...
    def writeSequence(self, data: Any) -> None: ...  # noqa: N802
    def getPeer(self) -> Any: ...  # noqa: N802
    def getHost(self) -> Any: ...  # noqa: N802


@implementer(IReactorProcess)
class FakeProcessReactor(Clock):
    """A ``Clock`` that also spawns ``FakeProcess``es (``IReactorProcess``)."""

    def __init__(self) -> None:
        super().__init__()
        self.spawned: list[FakeProcess] = []

    def spawnProcess(self, processProtocol: Any, executable: Any, args: Any = (), env: Any = None,  # noqa: N802,N803
                     path: Any = None, uid: Any = None, gid: Any = None, usePTY: bool = False,  # noqa: N803
                     childFDs: Any = None) -> FakeProcess:  # noqa: N803
        assert executable == args[0]
        process = FakeProcess(self, processProtocol, list(args), dict(env or {}), dict(childFDs or {}),
                              pid=1000 + len(self.spawned))
        self.spawned.append(process)
        processProtocol.makeConnection(process)
        return process

    def running(self) -> list[FakeProcess]:
        return [p for p in self.spawned if p.pid is not None]


def _config(shutdown_timeout: float = 30.0) -> Any:
    return SimpleNamespace(database=SimpleNamespace(uri="postgresql://db/gw"),
                           server=SimpleNamespace(redis_address="redis:6379", shutdown_timeout=shutdown_timeout))


class ApiHelpersTests(SynchronousTestCase):
    """Two helpers on a ``FakeProcessReactor``."""

    def setUp(self) -> None:
        self.reactor = FakeProcessReactor()
        verifyObject(IReactorProcess, self.reactor)
        self.helpers = ApiHelpers(self.reactor, 2, LISTEN_FD, "/etc/dhis2gw/dhis2gw.yml", _config(), kill_after=10.0)
        self.helpers.start()

    def test_spawned_with_the_listening_socket(self) -> None:
        """Each helper runs ``dhis2gw.cli --role api --listen-fd N`` with descriptor N inherited as N,
        the configuration path and the resolved addresses in its environment."""
        self.assertEqual(len(self.reactor.spawned), 2)
        for process in self.reactor.spawned:
            verifyObject(IProcessTransport, process)
            self.assertEqual(process.args, [sys.executable, "-m", "dhis2gw.cli", "--config", "/etc/dhis2gw/dhis2gw.yml",
                                            "--role", "api", "--listen-fd", str(LISTEN_FD)])
            self.assertEqual(process.child_fds, {0: 0, 1: 1, 2: 2, LISTEN_FD: LISTEN_FD})
            self.assertEqual((process.env["DHIS2GW_DB"], process.env["DHIS2GW_REDIS"]),
                             ("postgresql://db/gw", "redis:6379"))

    def test_stop_terms_and_fires_when_all_ended(self) -> None:
        """stop() sends SIGTERM to each; its Deferred fires once both have ended, and no SIGKILL is
        left scheduled."""
        stopped = self.helpers.stop()
        self.assertEqual([p.signals for p in self.reactor.spawned], [["TERM"], ["TERM"]])
        self.assertIsNone(self.successResultOf(stopped))
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        self.reactor.advance(60)
        self.assertEqual([p.signals for p in self.reactor.spawned], [["TERM"], ["TERM"]])

    def test_a_helper_ignoring_sigterm_is_killed_after_the_timeout(self) -> None:
        """One helper ignores SIGTERM: stop() returns at once with its Deferred pending (nothing
        blocks); 10 s later on the clock that helper alone gets SIGKILL and the Deferred fires."""
        stubborn, obedient = self.reactor.spawned
        stubborn.ignores_term = True
        stopped = self.helpers.stop()
        self.assertNoResult(stopped)
        self.assertEqual(obedient.signals, ["TERM"])
        self.reactor.advance(9.9)
        self.assertNoResult(stopped)
        self.assertEqual(stubborn.signals, ["TERM"])
        self.reactor.advance(0.1)
        self.assertEqual((stubborn.signals, obedient.signals), (["TERM", "KILL"], ["TERM"]))
        self.assertIsNone(self.successResultOf(stopped))
        self.assertEqual(self.reactor.running(), [])

    def test_a_crashed_helper_is_started_again(self) -> None:
        """A helper exiting on its own is replaced after the restart delay (2 s), with the same
        arguments; the others are left alone."""
        crashed = self.reactor.spawned[0]
        crashed.end(code=1)
        self.assertEqual(len(self.reactor.running()), 1)
        self.reactor.advance(1.9)
        self.assertEqual(len(self.reactor.spawned), 2)
        self.reactor.advance(0.1)
        self.assertEqual((len(self.reactor.spawned), len(self.reactor.running()), self.helpers.restarts), (3, 2, 1))
        self.assertEqual(self.reactor.spawned[2].args, crashed.args)
        self.assertIsNone(self.successResultOf(self.helpers.stop()))
        self.assertEqual([p.signals for p in self.reactor.spawned], [[], ["TERM"], ["TERM"]])

    def test_no_restart_once_stopping(self) -> None:
        """A crash just before the stop: the pending restart is cancelled, nothing new is spawned."""
        self.reactor.spawned[0].end(code=1)
        self.assertIsNone(self.successResultOf(self.helpers.stop()))
        self.reactor.advance(60)
        self.assertEqual((len(self.reactor.spawned), self.reactor.running()), (2, []))
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_kill_timeout_defaults_to_the_shutdown_timeout_plus_five_seconds(self) -> None:
        """Without ``kill_after``: server.shutdown_timeout + 5 s."""
        self.assertEqual(ApiHelpers(self.reactor, 1, LISTEN_FD, None, _config(12.0)).kill_after, 17.0)
