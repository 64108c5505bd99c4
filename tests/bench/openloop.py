"""An open-loop HTTP load generator: requests start at a fixed arrival rate, whatever the answers do.

wrk is closed-loop (a connection sends its next request only after the previous answer) and cannot
hold a rate; wrk2 is not packaged here. This asyncio generator schedules request i at
``start + i / rate`` and measures each latency from that *scheduled* time, so a server that falls
behind shows it in the percentiles (no coordinated omission). Keep-alive connections come from a
pool of at most ``max_connections``; when all are busy the request waits (and that wait counts).

Run: ``.venv/bin/python -m tests.bench.openloop URL --rate 300 --duration 30 [-H 'K: V'] [--body-file F]``.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from typing import Any
from urllib.parse import urlsplit


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def exchange(self, request: bytes) -> int:
        """Send one request and read the whole answer; return its status."""
        self.writer.write(request)
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("closed by server")
        status = int(status_line.split()[1])
        length: int | None = None
        chunked = False
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value.strip())
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if chunked:
            while True:
                size = int((await self.reader.readline()).split(b";")[0], 16)
                await self.reader.readexactly(size + 2)
                if size == 0:
                    break
        elif length:
            await self.reader.readexactly(length)
        return status


async def _run(url: str, headers: dict[str, str], body: bytes, rate: float, duration: float,
               max_connections: int) -> dict[str, Any]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    head = [f"POST {parts.path or '/'} HTTP/1.1", f"Host: {host}:{port}", f"Content-Length: {len(body)}"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    request = ("\r\n".join(head) + "\r\n\r\n").encode() + body
    idle: list[_Connection] = []
    slots = asyncio.Semaphore(max_connections)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0
    total = int(rate * duration)
    start = time.monotonic() + 0.2

    async def one(scheduled: float) -> None:
        nonlocal errors
        async with slots:
            conn = idle.pop() if idle else _Connection(*await asyncio.open_connection(host, port))
            try:
                status = await conn.exchange(request)
            except (OSError, ConnectionError, ValueError, asyncio.IncompleteReadError):
                errors += 1
                conn.writer.close()
                return
            latencies.append(time.monotonic() - scheduled)
            statuses[status] = statuses.get(status, 0) + 1
            idle.append(conn)

    tasks = []
    for i in range(total):
        scheduled = start + i / rate
        delay = scheduled - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one(scheduled)))
    sent_for = time.monotonic() - start
    await asyncio.gather(*tasks)
    for conn in idle:
        conn.writer.close()
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(len(latencies) * p))] * 1000 if latencies else float("nan")

    ok = sum(n for s, n in statuses.items() if 200 <= s < 300)
    return {"rate": rate, "sent": total, "achieved_rate": round(total / max(sent_for, 1e-6), 1), "ok": ok,
            "non2xx": sum(statuses.values()) - ok, "errors": errors, "p50": round(pct(0.50), 1),
            "p99": round(pct(0.99), 1), "max": round(latencies[-1] * 1000, 1) if latencies else float("nan"),
            "mean": round(statistics.fmean(latencies) * 1000, 1) if latencies else float("nan")}


def open_loop(url: str, headers: dict[str, str], body: bytes, rate: float, duration: float,
              max_connections: int = 256) -> dict[str, Any]:
    """POST ``body`` to ``url`` at ``rate`` requests/s for ``duration`` s; latency percentiles in ms."""
    return asyncio.run(_run(url, headers, body, rate, duration, max_connections))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--duration", type=float, default=30)
    parser.add_argument("--connections", type=int, default=256)
    parser.add_argument("-H", "--header", action="append", default=[])
    parser.add_argument("--body-file")
    args = parser.parse_args()
    headers = dict(h.split(": ", 1) for h in args.header)
    body = open(args.body_file, "rb").read() if args.body_file else b"{}"
    headers.setdefault("Content-Type", "application/json")
    print(json.dumps(open_loop(args.url, headers, body, args.rate, args.duration, args.connections)))


if __name__ == "__main__":
    main()
