"""``twistd dhis2sim``: run the DHIS2 simulator as a service."""
from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.logger import Logger
from twisted.python import usage


class Options(usage.Options):
    """Command-line options of ``twistd dhis2sim``."""

    optParameters = [  # noqa: N815
        ["port", "p", 8099, "TCP port to listen on", int],
        ["host", None, "127.0.0.1", "Interface to listen on"],
        ["metadata", "m", None, "YAML metadata file (default: the bundled country.yml)"],
        ["generate", None, None, "Generate a tree with this many facilities instead", int],
        ["user", "u", None, "Extra user USER:PASSWORD with ALL authorities (admin:district always exists)"],
        ["pat", None, None, "Register this personal access token for admin (2.37+)"],
        ["latency", None, None, "Fixed latency in seconds, or MIN-MAX for a uniform range"],
        ["job-delay", None, 0.5, "Seconds before an async import job completes", float],
    ]
    optFlags = [["no-control", None, "Disable the /__sim control endpoint"]]  # noqa: N815

    def __init__(self) -> None:
        """Defaults; ``--version`` is ours, not usage.Options' "print Twisted version"."""
        super().__init__()
        self["version"] = "2.40"

    def opt_version(self, version: str) -> None:  # type: ignore[override]
        """DHIS2 version to simulate (2.36 ... 2.44, e.g. 2.43.2) [default: 2.40]."""
        self["version"] = version

    opt_v = opt_version

    def postOptions(self) -> None:  # noqa: N802
        """Validate the version early so a typo fails at start-up."""
        from dhis2gw.sim.versions import Version
        try:
            Version.parse(self["version"])
        except ValueError as e:
            raise usage.UsageError(str(e)) from e


class SimulatorService(Service):
    """Owns the simulator and its listening port."""

    log = Logger()

    def __init__(self, options: Options, reactor: Any) -> None:
        """Keep the options and the reactor; everything is built in startService."""
        self.options = options
        self.reactor = reactor
        self.server: Any = None

    def startService(self) -> None:  # noqa: N802
        """Build the simulator and listen."""
        from twisted.internet.defer import Deferred

        from dhis2gw.sim import Metadata, Simulator, SimulatorServer

        super().startService()
        reactor = self.reactor
        o = self.options
        if o["generate"]:
            metadata = Metadata.generate(o["generate"])
        elif o["metadata"]:
            metadata = Metadata.load(o["metadata"])
        else:
            metadata = Metadata.load_default()
        sim = Simulator(o["version"], clock=reactor, metadata=metadata, control=not o["no-control"],
                        job_delay=o["job-delay"], keep_request_bodies=False)
        if o["user"]:
            name, _, password = o["user"].partition(":")
            sim.add_user(name, password)
        if o["pat"]:
            sim.add_pat("admin", o["pat"])
        if o["latency"]:
            low, _, high = str(o["latency"]).partition("-")
            sim.faults.latency(float(low), float(high) if high else None)
        self.server = SimulatorServer(sim, reactor, host=o["host"])
        d = Deferred.fromCoroutine(self.server.start(o["port"]))

        def started(port: int) -> None:
            self.log.info("DHIS2 {version} simulator on {url}/api", version=o["version"], url=self.server.base_url)

        def failed(f: Any) -> None:
            self.log.failure("simulator failed to start", f)
            reactor.stop()

        d.addCallbacks(started, failed)

    def stopService(self) -> Any:  # noqa: N802
        """Stop listening."""
        from twisted.internet.defer import Deferred
        super().stopService()
        if self.server is not None:
            return Deferred.fromCoroutine(self.server.stop())
        return None
