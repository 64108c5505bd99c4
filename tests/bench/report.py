"""Benchmark reports: print a Markdown section and append it to bench-results/<name>.md."""
from __future__ import annotations

import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[2] / "bench-results"


def machine() -> str:
    """One line describing this machine."""
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        mem_kb = int(next(line for line in open("/proc/meminfo") if line.startswith("MemTotal")).split()[1])
        mem = f"{mem_kb / 1024 / 1024:.0f} GiB"
    except (OSError, StopIteration):
        mem = "?"
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=RESULTS.parent).stdout.strip()
    except OSError:
        rev = "?"
    return (f"{platform.node()} · {os.cpu_count()} cores · {cpu} · {mem} · Python {platform.python_version()}"
            f" · commit {rev}")


def write_report(name: str, title: str, body: str) -> str:
    """Print and append a dated section; return the text."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = f"## {title} — {stamp}\n\n_{machine()}_\n\n{body}\n"
    print(text)
    RESULTS.mkdir(exist_ok=True)
    with open(RESULTS / f"{name}.md", "a") as f:
        f.write(text + "\n")
    return text
