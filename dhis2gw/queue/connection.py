"""Redis connections: a reconnecting command pool plus one dedicated blocking connection.

txredisapi's lazy pools do not fail while Redis is down: commands wait until it is back
(stack-notes pitfall 5). Every call made through ``RedisConnections.call`` therefore carries a
timeout on the injected clock and fails with ``RedisUnavailable`` instead of hanging a request.
Blocking commands (BLMOVE) use their own connection so they never hold a pooled one.
"""
from __future__ import annotations

from typing import Any

from twisted.application import service
from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger


class RedisUnavailable(Exception):
    """Redis did not answer in time or the connection is down."""


class RedisConnections(service.Service):
    """Owns the txredisapi pool and the blocking connection for one Redis server."""

    log = Logger()
    name = "redis"

    def __init__(self, clock: IReactorTime, host: str, port: int, db: int = 0,
                 timeout: float = 2.0, pool_size: int = 4) -> None:
        self.clock = clock
        self.host = host
        self.port = port
        self.db = db
        self.timeout = timeout
        self.pool_size = pool_size
        self.pool: Any = None
        self.blocking: Any = None

    def startService(self) -> None:  # noqa: N802
        super().startService()
        import txredisapi  # imported here: it installs the default reactor at import

        # dbid None for database 0: no SELECT round trip at each (re)connect, and no unhandled
        # "could not set dbid" error when a connection is dropped mid-handshake.
        dbid = self.db or None
        self.pool = txredisapi.lazyConnectionPool(
            self.host, self.port, dbid=dbid, poolsize=self.pool_size, reconnect=True,
            convertNumbers=False, connectTimeout=self.timeout)
        self.blocking = txredisapi.lazyConnection(
            self.host, self.port, dbid=dbid, reconnect=True, convertNumbers=False,
            connectTimeout=self.timeout)

    def stopService(self) -> defer.Deferred[Any]:  # noqa: N802
        super().stopService()
        ds = []
        for conn in (self.blocking, self.pool):
            if conn is not None:
                ds.append(defer.maybeDeferred(conn.disconnect))
        self.pool = self.blocking = None
        return defer.DeferredList(ds, consumeErrors=True)

    async def call(self, command: str, *args: Any, timeout: float | None = None,
                   blocking: bool = False) -> Any:
        """Run one Redis command with a timeout; raise ``RedisUnavailable`` on failure.

        ``blocking=True`` sends it on the dedicated connection (for BLMOVE and friends,
        whose own timeout must be shorter than ``timeout``).
        """
        conn = self.blocking if blocking else self.pool
        if conn is None:
            raise RedisUnavailable("Redis is not connected")
        import txredisapi

        try:
            d = defer.maybeDeferred(conn.execute_command, command, *args)
            d.addTimeout(self.timeout if timeout is None else timeout, self.clock)
            return await d
        except defer.TimeoutError as e:
            raise RedisUnavailable(f"Redis did not answer {command} in time") from e
        except (txredisapi.ConnectionError, ConnectionError) as e:
            raise RedisUnavailable(f"Redis connection failed: {e}") from e

    async def eval(self, script: str, keys: list[str], args: list[Any], timeout: float | None = None) -> Any:
        """Run a Lua script (EVALSHA with a fallback to EVAL) with a timeout."""
        conn = self.pool
        if conn is None:
            raise RedisUnavailable("Redis is not connected")
        import txredisapi

        try:
            d = defer.maybeDeferred(conn.eval, script, keys, args)
            d.addTimeout(self.timeout if timeout is None else timeout, self.clock)
            return await d
        except defer.TimeoutError as e:
            raise RedisUnavailable("Redis did not answer a script in time") from e
        except (txredisapi.ConnectionError, ConnectionError) as e:
            raise RedisUnavailable(f"Redis connection failed: {e}") from e

    async def ping(self) -> bool:
        """True when Redis answers PING within the timeout."""
        try:
            return (await self.call("PING")) in ("PONG", b"PONG", True)
        except RedisUnavailable:
            return False
