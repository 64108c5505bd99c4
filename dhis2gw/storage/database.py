"""The PostgreSQL connection pool: txpostgres with dead-connection detection.

``Database`` is the only way the gateway talks to PostgreSQL. It

* opens a pool of asynchronous psycopg2 connections, retrying with backoff until the
  server answers (twistd ignores ``startService``'s Deferred, so ``started`` tells the
  composition root when the pool is usable);
* gives each connection a ``DeadConnectionDetector`` so the pool reconnects by itself after a
  PostgreSQL restart (txpostgres never reconnects by default, stack-notes pitfall 4);
* shields every query from request cancellation (a client that disconnects must not cancel
  a statement half-way, stack-notes pitfall 3);
* turns "the database is not there" into ``DatabaseUnavailable``, which the API maps to
  503 + Retry-After;
* counts in-flight operations so ``stopService`` drains them before closing.

SQL lives in the store classes of this package; each call names its operation for the logs.
"""
from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import psycopg2
import psycopg2.extensions
import psycopg2.extras
from twisted.application import service
from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure
from txpostgres import reconnection, retrying, txpostgres

from dhis2gw.jsoncodec import document_text

T = TypeVar("T")

# Exceptions meaning "PostgreSQL is not reachable right now" (not "your SQL is wrong").
_UNAVAILABLE = (
    reconnection.ConnectionDead,
    psycopg2.OperationalError,
    psycopg2.InterfaceError,
    txpostgres.AlreadyConnected,
)


class DatabaseUnavailable(Exception):
    """PostgreSQL cannot be reached; the caller should answer 503 and try later."""


def _death_checker(failure: Failure) -> bool:
    return bool(failure.check(psycopg2.OperationalError, psycopg2.InterfaceError))


def _reconnection_delays():  # type: ignore[no-untyped-def]
    """Reconnect quickly first, then every 2 s: PostgreSQL restarts take a few seconds."""
    yield from (0.2, 0.5, 1.0)
    while True:
        yield 2.0


def shielded(d: defer.Deferred[T]) -> defer.Deferred[T]:
    """Return a Deferred with the result of ``d`` that cancelling does not propagate to ``d``."""
    out: defer.Deferred[T] = defer.Deferred()

    def relay(result: Any) -> Any:
        if isinstance(result, Failure):
            out.errback(result)
            return None  # the failure now belongs to ``out``
        out.callback(result)
        return result

    d.addBoth(relay)
    return out


class _Connection(txpostgres.Connection):
    """A connection whose idle-time failures start reconnection instead of being logged.

    When the server goes away, an idle connection's socket becomes readable and psycopg2's
    poll raises with "no one to report the error to": txpostgres re-raises it into the
    reactor, which logs an unhandled error. Here that failure goes to the dead-connection
    detector, which reconnects.
    """

    def _poll_quietly(self) -> None:
        try:
            self.continuePolling()
        except psycopg2.Error as e:
            if self.detector is not None:
                self.detector.checkForDeadConnection(Failure(e))

    def doRead(self) -> None:  # noqa: N802
        self.reactor.removeReader(self)
        if not self.pollable().closed:
            self._poll_quietly()

    def doWrite(self) -> None:  # noqa: N802
        self.reactor.removeWriter(self)
        if not self.pollable().closed:
            self._poll_quietly()


class _Detector(reconnection.DeadConnectionDetector):
    """txpostgres's dead-connection detector whose reconnection loop can be stopped.

    txpostgres keeps retrying a dead connection for ever, on the reactor, even after its pool is
    closed; a stopped gateway must leave nothing scheduled behind it.
    """

    _log = Logger()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._retrying: defer.Deferred[Any] | None = None

    def startReconnecting(self, f: Failure) -> None:  # noqa: N802 - txpostgres's name
        call = retrying.RetryingCall(self.reconnect)
        call.reactor = self.reactor
        d = call.start(self.reconnectionIterator())
        self._retrying = d
        d.addCallback(lambda _: self.connectionRecovered())
        d.addErrback(self._reconnect_failed)

    def _reconnect_failed(self, failure: Failure) -> None:
        if not failure.check(defer.CancelledError):
            self._log.failure("PostgreSQL reconnection failed", failure)

    def stop(self) -> None:
        """Give up reconnecting (the pool is closing)."""
        if self._retrying is not None and not self._retrying.called:
            self._retrying.cancel()


class _Pool(txpostgres.ConnectionPool):
    """A txpostgres pool whose connections reconnect after the server restarts."""

    def __init__(self, reactor: Any, dsn: str, size: int) -> None:
        self.reactor = reactor
        super().__init__(None, dsn, min=size, cursor_factory=psycopg2.extras.RealDictCursor)

    def connectionFactory(self, reactor: Any, cooperator: Any) -> txpostgres.Connection:  # noqa: N802
        detector = _Detector(deathChecker=_death_checker, reconnectionIterator=_reconnection_delays, reactor=reactor)
        return _Connection(reactor, cooperator, detector=detector)

    def close(self) -> None:
        """Stop every connection's reconnection loop, then close the connections."""
        for connection in self.connections:
            if isinstance(connection.detector, _Detector):
                connection.detector.stop()
        super().close()


class Database(service.Service):
    """A reconnecting txpostgres pool owned as a Twisted service.

    :param reactor: the reactor (time + core); only ``callLater``/``deferLater`` are used.
    :param dsn: libpq connection string or URI.
    :param size: number of pooled connections.
    :param on_started: awaited after the pool is up and before ``started`` fires
        (the composition root runs migrations there).
    """

    log = Logger()
    name = "database"

    def __init__(self, reactor: IReactorTime, dsn: str, size: int = 6,
                 on_started: Callable[[Database], Awaitable[None]] | None = None,
                 max_start_delay: float = 10.0) -> None:
        self.reactor = reactor
        self.dsn = dsn
        self.size = size
        self._on_started = on_started
        self._max_start_delay = max_start_delay
        self._pool: _Pool | None = None
        self._in_flight = 0
        self._drained: list[defer.Deferred[None]] = []
        self._stopping = False
        self.started: defer.Deferred[Database] = defer.Deferred()

    # --- lifecycle -------------------------------------------------------------------
    def startService(self) -> None:  # noqa: N802
        super().startService()
        self._stopping = False
        d = defer.Deferred.fromCoroutine(self._start())
        d.addErrback(self._fatal)

    async def _start(self) -> None:
        delay = 0.5
        attempt = 0
        while not self._stopping:
            attempt += 1
            pool = _Pool(self.reactor, self.dsn, self.size)
            try:
                await pool.start()
            except Exception as e:  # noqa: BLE001 - any failure to connect means "retry"
                pool.close()
                cause: BaseException | None = e
                if isinstance(e, defer.FirstError):  # the pool's first failed connection: say why it failed
                    cause = e.subFailure.value
                reason = str(cause).strip().splitlines()[0] if str(cause).strip() else repr(cause)
                self.log.warn("PostgreSQL not reachable (attempt {attempt}): {error}; retrying in {delay:.1f}s",
                              attempt=attempt, error=reason, delay=delay)
                await deferLater(self.reactor, delay, lambda: None)
                delay = min(delay * 2 * (0.75 + random.random() / 2), self._max_start_delay)
                continue
            self._pool = pool
            self.log.info("PostgreSQL pool ready ({size} connections)", size=self.size)
            break
        if self._stopping:
            return
        if self._on_started is not None:
            await self._on_started(self)
        self.started.callback(self)

    def _fatal(self, failure: Failure) -> None:
        self.log.failure("Database start-up failed", failure)
        if not self.started.called:
            self.started.errback(failure)

    def stopService(self) -> defer.Deferred[None]:  # noqa: N802
        super().stopService()
        self._stopping = True
        return defer.Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        if self._in_flight:
            waiter: defer.Deferred[None] = defer.Deferred()
            self._drained.append(waiter)
            waiter.addTimeout(10, self.reactor)
            try:
                await waiter
            except defer.TimeoutError:
                self.log.warn("Closing the pool with {n} queries still running", n=self._in_flight)
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    # --- queries -----------------------------------------------------------------------
    @property
    def available(self) -> bool:
        """True when the pool is open (it may still be reconnecting)."""
        return self._pool is not None

    def _track(self, d: defer.Deferred[T], name: str) -> defer.Deferred[T]:
        self._in_flight += 1

        def done(result: Any) -> Any:
            self._in_flight -= 1
            if not self._in_flight:
                waiters, self._drained = self._drained, []
                for w in waiters:
                    w.callback(None)
            if isinstance(result, Failure) and result.check(*_UNAVAILABLE):
                self.log.debug("{name}: database unavailable: {error}", name=name, error=result.value)
                return Failure(DatabaseUnavailable(str(result.value).strip() or type(result.value).__name__))
            return result

        return shielded(d.addBoth(done))

    def _require_pool(self) -> _Pool:
        if self._pool is None:
            raise DatabaseUnavailable("the database pool is not connected")
        return self._pool

    async def fetch(self, name: str, sql: str, params: Sequence[Any] | dict[str, Any] | None = None
                    ) -> list[dict[str, Any]]:
        """Run a query and return its rows as dicts. ``name`` labels it in logs."""
        pool = self._require_pool()
        rows = await self._track(defer.maybeDeferred(pool.runQuery, sql, params), name)
        return list(rows or [])

    async def fetch_one(self, name: str, sql: str, params: Sequence[Any] | dict[str, Any] | None = None
                        ) -> dict[str, Any] | None:
        """Run a query and return its first row, or None."""
        rows = await self.fetch(name, sql, params)
        return rows[0] if rows else None

    async def execute(self, name: str, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> None:
        """Run a statement whose result is not needed."""
        pool = self._require_pool()
        await self._track(defer.maybeDeferred(pool.runOperation, sql, params), name)

    async def transaction(self, name: str, fn: Callable[[Any], Awaitable[T]]) -> T:
        """Run ``async fn(cursor)`` in one transaction (committed when it returns)."""
        pool = self._require_pool()

        def interaction(cursor: Any) -> defer.Deferred[T]:
            return defer.Deferred.fromCoroutine(fn(cursor))  # type: ignore[arg-type]

        return await self._track(defer.maybeDeferred(pool.runInteraction, interaction), name)

    async def ping(self) -> bool:
        """True when PostgreSQL answers a trivial query."""
        try:
            await self.fetch("ping", "SELECT 1 AS ok")
            return True
        except Exception:  # noqa: BLE001
            return False


async def cursor_fetch(cursor: Any, sql: str, params: Sequence[Any] | dict[str, Any] | None = None
                       ) -> list[dict[str, Any]]:
    """Execute on a transaction cursor (inside ``Database.transaction``) and return the rows."""
    await cursor.execute(sql, params)
    if cursor.description is None:
        return []
    return list(cursor.fetchall())


def json_param(value: Any) -> psycopg2.extras.Json:
    """Wrap a Python value for a jsonb parameter."""
    return psycopg2.extras.Json(value, dumps=document_text)
