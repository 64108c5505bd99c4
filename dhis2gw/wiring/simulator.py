"""``twistd dhis2sim``: the simulator's options and its service on the global reactor.

The simulator is a program of its own (tests, benchmarks, demos); this is its composition root,
as `dhis2gw.wiring.entry` is the gateway's.
"""
from __future__ import annotations

from twisted.application.service import IService

from dhis2gw.sim.tap import Options, SimulatorService

__all__ = ["Options", "makeService"]


def makeService(options: Options) -> IService:  # noqa: N802 - the name twistd looks up
    """The service ``twistd dhis2sim`` runs."""
    from twisted.internet import reactor

    return SimulatorService(options, reactor)
