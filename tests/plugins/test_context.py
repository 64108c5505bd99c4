"""``PluginContext`` and ``QueueOperations``: what plugins get, and what they never get."""
from __future__ import annotations

import dataclasses
import typing
from typing import Any

from twisted.application.service import MultiService
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from dhis2gw.delivery.dispatcher import Dispatcher
from dhis2gw.queue.connection import RedisConnections
from dhis2gw.queue.feed import SubmissionQueue
from dhis2gw.storage.database import Database
from dhis2gw.wiring.context import PluginContext, QueueOperations
from dhis2gw.wiring.root import Gateway

#: What only the composition root holds: a field of one of these types would hand it to plugins.
INTERNAL_TYPES = (Database, Dispatcher, Gateway, RedisConnections, SubmissionQueue, MultiService)


def _types_in(hint: Any) -> list[Any]:
    """Every class named by a type hint, through Optional, Mapping[...], Callable[...] and the like."""
    found = [hint] if isinstance(hint, type) else []
    for arg in typing.get_args(hint):
        found += _types_in(arg) if not isinstance(arg, list) else [t for a in arg for t in _types_in(a)]
    return found


class FakeQueue:
    """Records pushes, like ``SubmissionQueue.enqueue``."""

    def __init__(self) -> None:
        self.pushed: list[tuple[str, int, float | None]] = []

    async def enqueue(self, dest: str, submission_id: int, timeout: float | None = None) -> bool:
        self.pushed.append((dest, submission_id, timeout))
        return True


class FakeDispatcher:
    """The dispatcher's lane and wake-up surface, in memory."""

    def __init__(self) -> None:
        self.workers: dict[str, Any] = {"main": object()}
        self.woken: list[str] = []

    def add_lane(self, name: str, client: Any, max_concurrent: int) -> Any:
        if name in self.workers:
            raise ValueError(f"a destination or lane named {name!r} already exists")
        worker = self.workers[name] = (client, max_concurrent)
        return worker

    def wake(self, destination: str) -> None:
        self.woken.append(destination)


class PluginContextTests(SynchronousTestCase):
    """Plugins never see the database, the dispatcher, Redis or the old Gateway."""

    def test_no_field_is_typed_as_an_internal_part(self) -> None:
        """No field of PluginContext (nor of QueueOperations' public surface) is typed as the database,
        the dispatcher, Redis, the raw queue, the service tree or the Gateway."""
        hints = typing.get_type_hints(PluginContext)
        for f in dataclasses.fields(PluginContext):
            for cls in _types_in(hints[f.name]):
                self.assertFalse(issubclass(cls, INTERNAL_TYPES), f"PluginContext.{f.name} is a {cls.__name__}")
        names = {f.name for f in dataclasses.fields(PluginContext)}
        self.assertEqual(names & {"db", "database", "dispatcher", "gateway", "redis", "service", "parts"}, set())
        public = {n for n in vars(QueueOperations) if not n.startswith("_")}
        self.assertEqual(public, {"runs_worker", "enqueue", "wake", "has_lane", "add_lane"})

    def test_context_of_a_built_gateway_holds_none_of_its_internals(self) -> None:
        """The context the composition root builds: no field value is the gateway's db, dispatcher,
        Redis, raw queue or service tree; its outcome registry is the dispatcher's."""
        from twisted.internet import reactor

        from dhis2gw.wiring.root import build_gateway
        from tests.plugins.support import make_config

        gateway = build_gateway(make_config(), reactor, "all")
        context = gateway.context
        internals = [gateway, gateway.db, gateway.redis, gateway.queue, gateway.dispatcher, gateway.service]
        for f in dataclasses.fields(context):
            value = getattr(context, f.name)
            self.assertFalse(any(value is part for part in internals), f"PluginContext.{f.name}")
        self.assertIs(context.outcomes, gateway.events.outcomes)
        self.assertIs(context.submissions, gateway.store)
        self.assertTrue(context.runs_worker)
        self.assertTrue(context.runs_api)
        with self.assertRaises(dataclasses.FrozenInstanceError):
            context.role = "worker"  # type: ignore[misc]

    def test_add_service_joins_the_gateway_tree(self) -> None:
        """A service a plugin adds starts and stops with the gateway's tree."""
        from tests.plugins.support import make_context

        tree = MultiService()
        context = make_context(Clock(), service=tree)  # type: ignore[arg-type]
        child = MultiService()
        context.add_service(child)
        tree.startService()
        self.assertTrue(child.running)
        tree.stopService()
        self.assertFalse(child.running)


class QueueOperationsTests(SynchronousTestCase):
    """Push, wake and lanes, with and without a dispatcher in the process."""

    def test_with_a_dispatcher(self) -> None:
        """enqueue pushes (with its timeout), wake and add_lane reach the dispatcher, a taken name raises."""
        queue, dispatcher = FakeQueue(), FakeDispatcher()
        ops = QueueOperations(queue, dispatcher)  # type: ignore[arg-type]
        self.assertTrue(ops.runs_worker)
        self.assertTrue(self.successResultOf(defer.Deferred.fromCoroutine(ops.enqueue("_lane", 7, timeout=2))))
        self.assertEqual(queue.pushed, [("_lane", 7, 2)])
        self.assertFalse(ops.has_lane("_lane"))
        client = object()
        self.assertEqual(ops.add_lane("_lane", client, 3), (client, 3))
        self.assertTrue(ops.has_lane("_lane"))
        self.assertRaises(ValueError, ops.add_lane, "main", client, 1)
        ops.wake("_lane")
        self.assertEqual(dispatcher.woken, ["_lane"])

    def test_without_a_dispatcher(self) -> None:
        """An API-only process: enqueue still pushes; wake and add_lane do nothing and say so."""
        queue = FakeQueue()
        ops = QueueOperations(queue, None)  # type: ignore[arg-type]
        self.assertFalse(ops.runs_worker)
        self.successResultOf(defer.Deferred.fromCoroutine(ops.enqueue("main", 1)))
        self.assertEqual(queue.pushed, [("main", 1, None)])
        self.assertIsNone(ops.add_lane("_lane", object(), 2))
        self.assertFalse(ops.has_lane("_lane"))
        ops.wake("main")  # nothing to wake: the worker processes pick the id up
