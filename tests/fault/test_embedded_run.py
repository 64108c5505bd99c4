"""The README's run path with real processes: the embedded default starts, answers, and stops cleanly."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

from dhis2gw.runtime.embedded import free_port, wait_for_port
from tests.support.processes import VENV_BIN, wait_until
from tests.support.services import ROOT


def _embedded_children(state: str) -> list[psutil.Process]:
    """The private PostgreSQL (its data directory is in the command line) and Redis (redis-server
    rewrites its title to ``redis-server 127.0.0.1:<port>``; the port is in the state directory)."""
    port_file = Path(state) / "redis.port"
    redis_tag = f"127.0.0.1:{port_file.read_text().strip()}" if port_file.exists() else None
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if (state in cmd and "postgres" in cmd) or (redis_tag and "redis-server" in cmd and redis_tag in cmd):
            found.append(proc)
    return found


@dataclass
class _Started:
    """A gateway process on the embedded default, its API port and its state directory."""

    proc: subprocess.Popen[bytes]
    port: int
    state: str
    env: dict[str, str]

    def assert_ready(self) -> None:
        """``GET /ready`` finds its PostgreSQL and Redis answering."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/ready", timeout=10) as r:
            checks = json.loads(r.read())["checks"]
        assert checks["postgresql"]["ok"] and checks["redis"]["ok"], checks


@contextmanager
def _started(command: list[str]) -> Iterator[_Started]:
    """``command`` started on a fresh state directory and listening; killed with its servers on exit."""
    state = tempfile.mkdtemp(prefix="dhis2gw-embedded-")
    port, sim_port = free_port(), free_port()
    env = dict(os.environ, DHIS2GW_STATE_DIR=state, DHIS2GW_LOGDIR=state, DHIS2GW_SERVER_PORT=str(port),
               dhis2_base_url=f"http://127.0.0.1:{sim_port}")
    log = open(Path(state) / "out.log", "wb")
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        assert wait_for_port("127.0.0.1", port, 120), (Path(state) / "out.log").read_text()[-3000:]
        yield _Started(proc, port, state, env)
    finally:
        if proc.poll() is None:
            proc.kill()
        for child in _embedded_children(state):
            child.kill()
        shutil.rmtree(state, ignore_errors=True)


def _run_and_stop(command: list[str]) -> None:
    with _started(command + ["--config", "conf/dev.yml"]) as gateway:
        with urllib.request.urlopen(f"http://127.0.0.1:{gateway.port}/health", timeout=10) as r:
            assert r.status == 200 and json.loads(r.read())["status"] == "ok"
        gateway.assert_ready()
        assert len(_embedded_children(gateway.state)) >= 2  # the private PostgreSQL and Redis are running
        gateway.proc.send_signal(signal.SIGTERM)
        gateway.proc.wait(60)
        assert _embedded_children(gateway.state) == [], "embedded servers still running after SIGTERM"


def test_console_script_runs_the_embedded_default() -> None:
    """`dhis2gw --config conf/dev.yml`: /health and /ready answer; SIGTERM stops it and its servers."""
    _run_and_stop([str(VENV_BIN / "dhis2gw")])


def test_twistd_runs_the_embedded_default() -> None:
    """`twistd -n dhis2gw --config conf/dev.yml` works as well as the console script."""
    _run_and_stop([str(VENV_BIN / "twistd"), "-n", "--pidfile=", "dhis2gw"])


def test_twistd_lists_the_plugins() -> None:
    """`twistd --help` lists dhis2gw and dhis2sim."""
    out = subprocess.run([str(VENV_BIN / "twistd"), "--help"], capture_output=True, text=True, cwd=ROOT).stdout
    assert "dhis2gw" in out and "dhis2sim" in out


def test_check_config_cli() -> None:
    """`dhis2gw check-config` passes on the shipped file (with its secret) and names the key of a bad value."""
    env = dict(os.environ, DHIS2GW_JWT_SECRET="s" * 40)
    ok = subprocess.run([str(VENV_BIN / "dhis2gw"), "check-config", "--config", "conf/dhis2gw.yml"],
                        capture_output=True, text=True, cwd=ROOT, env=env)
    assert ok.returncode == 0 and "configuration OK" in ok.stdout, ok.stderr
    bad = subprocess.run([str(VENV_BIN / "dhis2gw"), "check-config", "--config", "conf/dhis2gw.yml"],
                         capture_output=True, text=True, cwd=ROOT, env=dict(env, DHIS2GW_SERVER_PORT="abc"))
    assert bad.returncode == 2
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and "server.port" in lines[0] and "DHIS2GW_SERVER_PORT" in lines[0], bad.stderr


def test_second_run_on_the_same_state_dir_is_refused() -> None:
    """A second `dhis2gw --demo` on the first one's state_dir exits non-zero with one line naming
    the first one's pid; it stops nothing, and the first stays ready with its servers running."""
    command = [str(VENV_BIN / "dhis2gw"), "--config", "conf/dev.yml", "--demo"]
    with _started(command) as first:
        state = first.state
        servers = {p.pid for p in _embedded_children(state)}
        assert len(servers) >= 2
        second = subprocess.run(command, cwd=ROOT, env=first.env, capture_output=True, text=True, timeout=60)
        assert second.returncode != 0
        lines = (second.stdout + second.stderr).strip().splitlines()
        assert len(lines) == 1 and f"pid {first.proc.pid}" in lines[0] and state in lines[0], lines
        assert "Traceback" not in second.stderr and "is up" not in second.stdout
        assert first.proc.poll() is None
        first.assert_ready()
        assert {p.pid for p in _embedded_children(state)} == servers
        # The demo's bootstrap runs after the API listens: a SIGTERM before it ends cuts it short.
        wait_until(lambda: "demo is up" in (Path(state) / "out.log").read_text(), timeout=60, what="the demo banner")
        first.proc.send_signal(signal.SIGTERM)
        first.proc.wait(60)
        assert _embedded_children(state) == []
        # The banner came once, after the API listened ("listening" is logged before "is up").
        out = (Path(state) / "out.log").read_text()
        assert out.count("demo is up") == 1 and out.index("API listening") < out.index("demo is up"), out[-3000:]
