"""``PluginContext``: everything a plugin is given, and nothing else.

Plugins (``dhis2gw.interfaces``: a ``setup(context)`` hook, ``IApiExtension.api_area(context)``,
``ICronJob.run(context)``) receive one frozen :class:`PluginContext` built by the composition
root. Its fields are the public, stable API of the gateway towards plugins: the stores that own
the SQL, the queue operations, the DHIS2 clients, the outcome observers, the ingest body checks
and a way to add a service to the gateway's tree. Plugins never see the database, the
dispatcher or the Redis connections: what they may do with them is a method here.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twisted.application.service import IService
from twisted.internet.interfaces import IReactorTCP, IReactorTime

from dhis2gw.auth.principal import Principal
from dhis2gw.config import Config
from dhis2gw.delivery.observers import OutcomeObservers
from dhis2gw.dhis2.client import DHIS2Client
from dhis2gw.queue.feed import SubmissionQueue
from dhis2gw.storage.submissions import SubmissionStore
from dhis2gw.storage.users import UserStore

if TYPE_CHECKING:
    from dhis2gw.delivery.dispatcher import Dispatcher
    from dhis2gw.delivery.worker import DestinationWorker

#: ``check(principal, body)``: run by ingest on every submission body before ``prepare``; raises
#: ``dhis2gw.errors.ApiError`` to refuse it (e.g. 422 for a callback URL the policy refuses).
IngestCheck = Callable[[Principal, Any], None]


class IPluginReactor(IReactorTime, IReactorTCP):
    """What a plugin may use of the reactor: its clock (``seconds``, ``callLater``, for
    ``LoopingCall.clock`` and ``Deferred.addTimeout``) and outgoing TCP connections (HTTP clients)."""


class QueueOperations:
    """What a plugin may do with the delivery queue: push, wake, and add a lane of its own.

    Wraps the ``SubmissionQueue`` (Redis) and, in a process that delivers, the dispatcher. On an
    API-only process (no dispatcher) ``wake`` and ``add_lane`` do nothing: the worker processes
    pick the queued ids up.
    """

    def __init__(self, queue: SubmissionQueue, dispatcher: Dispatcher | None) -> None:
        self._queue = queue
        self._dispatcher = dispatcher

    @property
    def runs_worker(self) -> bool:
        """True when this process delivers (it has the dispatcher)."""
        return self._dispatcher is not None

    async def enqueue(self, destination: str, submission_id: int, timeout: float | None = None) -> bool:
        """Push a recorded submission's id onto ``destination``'s queue (lane).

        Raises ``dhis2gw.queue.connection.RedisUnavailable`` when Redis does not answer within
        ``timeout``; the row stays ``queued`` in PostgreSQL and the reconciler pushes it later.
        """
        return await self._queue.enqueue(destination, submission_id, timeout=timeout)

    def wake(self, destination: str) -> None:
        """Have this process's worker of ``destination`` look at its queue now (no-op without one)."""
        if self._dispatcher is not None:
            self._dispatcher.wake(destination)

    def has_lane(self, name: str) -> bool:
        """True when this process delivers the queue ``name`` (a destination or a lane)."""
        return self._dispatcher is not None and name in self._dispatcher.workers

    def add_lane(self, name: str, client: Any, max_concurrent: int) -> DestinationWorker | None:
        """Deliver the queue ``name`` with its own worker, breaker and concurrency, never taking a
        DHIS2 destination's delivery slots. ``client`` is what the kinds' ``deliver`` gets, and its
        async ``health_check()`` (an ``Outcome``) probes the lane's breaker. Call it from ``setup``
        (before the gateway starts). Returns the worker, or None on a process without a dispatcher;
        raises ValueError when a destination or lane already has that name.
        """
        if self._dispatcher is None:
            return None
        return self._dispatcher.add_lane(name, client, max_concurrent)


@dataclass(frozen=True)
class PluginContext:
    """What a plugin gets from the gateway (public API: fields are added, never removed or changed).

    :param reactor: the reactor (clock and TCP); the only one a plugin may use.
    :param config: the gateway's validated configuration (read-only).
    :param role: ``"all"``, ``"api"`` (HTTP only) or ``"worker"`` (delivery only).
    :param environ: the process environment, for a plugin's own settings (``DHIS2GW_<PLUGIN>_*``).
    :param submissions: the submissions store (record, read, find; every query lives there).
    :param users: the users store.
    :param dhis2: destination name → DHIS2 client (read-only).
    :param queue: push, wake, add a lane (:class:`QueueOperations`).
    :param outcomes: the registry told about every recorded delivery outcome: ``outcomes.add(observer)``
        with ``observer(destination, row, outcome, event)``.
    :param ingest_checks: ``check(principal, body)`` callables ingest runs before ``prepare``;
        append to it in ``setup``.
    :param add_service: add a Twisted service to the gateway's tree: it starts with the gateway and
        is stopped (its ``stopService`` Deferred awaited) before the database and Redis close.
    """

    reactor: IPluginReactor
    config: Config
    role: str
    environ: Mapping[str, str]
    submissions: SubmissionStore
    users: UserStore
    dhis2: Mapping[str, DHIS2Client]
    queue: QueueOperations
    outcomes: OutcomeObservers
    ingest_checks: list[IngestCheck]
    add_service: Callable[[IService], None]

    @property
    def runs_worker(self) -> bool:
        """True when this process delivers: lanes, wake-ups and outcome observers only happen here."""
        return self.queue.runs_worker

    @property
    def runs_api(self) -> bool:
        """True when this process serves HTTP (roles ``all`` and ``api``)."""
        return self.role in ("all", "api")
