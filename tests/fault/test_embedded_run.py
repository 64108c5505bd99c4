"""The README's run path with real processes: the embedded default starts, answers, and stops cleanly."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import urllib.request
from pathlib import Path

import psutil

from dhis2gw.runtime.embedded import free_port, wait_for_port
from tests.support.processes import VENV_BIN
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


def _run_and_stop(command: list[str]) -> None:
    state = tempfile.mkdtemp(prefix="dhis2gw-embedded-")
    port, sim_port = free_port(), free_port()
    env = dict(os.environ, DHIS2GW_STATE_DIR=state, DHIS2GW_LOGDIR=state, DHIS2GW_SERVER_PORT=str(port),
               dhis2_base_url=f"http://127.0.0.1:{sim_port}")
    log = open(Path(state) / "out.log", "wb")
    proc = subprocess.Popen(command + ["--config", "conf/dev.yml"], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        assert wait_for_port("127.0.0.1", port, 120), (Path(state) / "out.log").read_text()[-3000:]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as r:
            assert r.status == 200 and json.loads(r.read())["status"] == "ok"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=10) as r:
            checks = json.loads(r.read())["checks"]
        assert checks["postgresql"]["ok"] and checks["redis"]["ok"], checks
        assert len(_embedded_children(state)) >= 2  # the private PostgreSQL and Redis are running
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        assert _embedded_children(state) == [], "embedded servers still running after SIGTERM"
    finally:
        if proc.poll() is None:
            proc.kill()
        for child in _embedded_children(state):
            child.kill()
        shutil.rmtree(state, ignore_errors=True)


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
    state = tempfile.mkdtemp(prefix="dhis2gw-embedded-")
    port, sim_port = free_port(), free_port()
    env = dict(os.environ, DHIS2GW_STATE_DIR=state, DHIS2GW_LOGDIR=state, DHIS2GW_SERVER_PORT=str(port),
               dhis2_base_url=f"http://127.0.0.1:{sim_port}")
    command = [str(VENV_BIN / "dhis2gw"), "--config", "conf/dev.yml", "--demo"]
    log = open(Path(state) / "out.log", "wb")
    first = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        assert wait_for_port("127.0.0.1", port, 120), (Path(state) / "out.log").read_text()[-3000:]
        servers = {p.pid for p in _embedded_children(state)}
        assert len(servers) >= 2
        second = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert second.returncode != 0
        lines = (second.stdout + second.stderr).strip().splitlines()
        assert len(lines) == 1 and f"pid {first.pid}" in lines[0] and state in lines[0], lines
        assert "Traceback" not in second.stderr and "is up" not in second.stdout
        assert first.poll() is None
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=10) as r:
            checks = json.loads(r.read())["checks"]
        assert checks["postgresql"]["ok"] and checks["redis"]["ok"], checks
        assert {p.pid for p in _embedded_children(state)} == servers
        first.send_signal(signal.SIGTERM)
        first.wait(60)
        assert _embedded_children(state) == []
        # The banner came once, after the API listened ("listening" is logged before "is up").
        out = (Path(state) / "out.log").read_text()
        assert out.count("demo is up") == 1 and out.index("API listening") < out.index("demo is up"), out[-3000:]
    finally:
        if first.poll() is None:
            first.kill()
        for child in _embedded_children(state):
            child.kill()
        shutil.rmtree(state, ignore_errors=True)
