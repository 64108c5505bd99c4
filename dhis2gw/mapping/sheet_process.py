"""Parse uploaded mapping sheets in a child process, off the reactor (issue 16, F8).

openpyxl and the csv module are pure CPU: a 199k-row sheet or a huge shared-strings table froze
``/health`` for seconds when parsed in the reactor thread, and a thread would share the GIL and
could not be bounded in memory. So ``SubprocessSheetParser`` runs ``read_csv``/``read_xlsx`` in
``python -m dhis2gw.mapping.sheet_process`` with:

* an address-space limit (``RLIMIT_AS``, ``memory_bytes``) and a CPU-time limit (``RLIMIT_CPU``),
  plus a wall-clock deadline after which the child is killed;
* at most ``max_parallel`` children at once (the others wait their turn);
* the file on stdin, the result on stdout as JSON lines: a header line, one line per row
  (``[row number, [cell texts in COLUMNS order]]``) and an end line, or an ``error`` line with
  the ``SheetRejected`` fields. Output beyond ``max_output_bytes`` kills the child.

Any failure of the child (an XML error, a limit, a crash) is a 4xx ``SheetRejected``, never a
500. Rows are decoded lazily as the importer consumes them, so the reactor never decodes the
whole file at once. ``defusedxml`` is installed: openpyxl then parses XML through it (no
entity expansion, no external entities).
"""
from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from typing import Any, cast

from twisted.internet import defer, protocol
from twisted.internet.interfaces import IProcessTransport
from twisted.logger import Logger

from dhis2gw.mapping.rows import COLUMNS
from dhis2gw.mapping.sheets import Sheet, SheetLimits, SheetRejected, check_zip, read_csv, read_xlsx

MIB = 1024 * 1024
_LIMIT_FIELDS = ("max_file_bytes", "max_rows", "max_uncompressed_bytes", "max_member_ratio", "max_members",
                 "max_shared_strings_bytes")


class _Collect(protocol.ProcessProtocol):
    def __init__(self, data: bytes, max_output: int) -> None:
        self.data = data
        self.max_output = max_output
        self.chunks: list[bytes] = []
        self.size = 0
        self.stderr = b""
        self.overflow = False
        self.done: defer.Deferred[int] = defer.Deferred()

    @property
    def _child(self) -> IProcessTransport:
        """The child process (connected from ``connectionMade`` on)."""
        return cast(IProcessTransport, self.transport)

    def connectionMade(self) -> None:  # noqa: N802
        self._child.write(self.data)
        self._child.closeStdin()

    def outReceived(self, data: bytes) -> None:  # noqa: N802
        self.size += len(data)
        if self.size > self.max_output:
            if not self.overflow:
                self.overflow = True
                self._child.signalProcess("KILL")
            return
        self.chunks.append(data)

    def errReceived(self, data: bytes) -> None:  # noqa: N802
        self.stderr = (self.stderr + data)[-4000:]

    def processEnded(self, reason: Any) -> None:  # noqa: N802
        code = getattr(reason.value, "exitCode", None)
        self.done.callback(code if code is not None else -1)


class SubprocessSheetParser:
    """``parse(data, kind, sheet, limits)`` → ``Sheet``, in a bounded child process (module docstring)."""

    log = Logger()

    def __init__(self, reactor: Any, max_parallel: int = 2, memory_bytes: int = 1024 * MIB,
                 timeout: float = 120.0, max_output_bytes: int = 512 * MIB, inline_bytes: int = 256 * 1024) -> None:
        self.reactor = reactor
        #: Files this small (CSV bytes; XLSX: declared uncompressed size) parse in a few milliseconds:
        #: they are read here, without a child process.
        self.inline_bytes = inline_bytes
        self.semaphore = defer.DeferredSemaphore(max_parallel)
        self.memory_bytes = memory_bytes
        self.timeout = timeout
        self.max_output_bytes = max_output_bytes

    async def parse(self, data: bytes, kind: str, sheet: str | None, limits: SheetLimits) -> Sheet:
        if kind == "csv":
            if len(data) <= self.inline_bytes:
                return read_csv(data, limits)
        elif check_zip(data, limits) <= self.inline_bytes:  # the zip directory only: bombs refused here
            return read_xlsx(data, sheet, limits)
        await self.semaphore.acquire()
        try:
            lines = await self._run(data, kind, sheet, limits)
        finally:
            self.semaphore.release()
        return _sheet_from(lines)

    async def _run(self, data: bytes, kind: str, sheet: str | None, limits: SheetLimits) -> list[bytes]:
        collect = _Collect(data, self.max_output_bytes)
        settings = json.dumps({"kind": kind, "sheet": sheet, "memory": self.memory_bytes,
                               "cpu": int(self.timeout) + 1,
                               "limits": {f: getattr(limits, f) for f in _LIMIT_FIELDS}})
        transport = self.reactor.spawnProcess(
            collect, sys.executable, [sys.executable, "-m", "dhis2gw.mapping.sheet_process", settings],
            env=dict(os.environ))
        killer = self.reactor.callLater(self.timeout, _kill, transport)
        try:
            code = await collect.done
        finally:
            if killer.active():
                killer.cancel()
        if collect.overflow:
            raise SheetRejected(413, "sheet_too_large", "the file's content is too large to import")
        lines = b"".join(collect.chunks).split(b"\n")
        if code != 0 and not any(line.startswith(b'{"error"') for line in lines[-3:]):
            self.log.warn("Sheet parser exited with {code}: {stderr}", code=code,
                          stderr=collect.stderr.decode("utf-8", "replace")[-500:])
            raise SheetRejected(422, "sheet_unreadable",
                                "the file could not be read within the time and memory limits",
                                {"limit_seconds": self.timeout, "limit_bytes": self.memory_bytes})
        return [line for line in lines if line]


def _kill(transport: Any) -> None:
    try:
        transport.signalProcess("KILL")
    except Exception:  # noqa: BLE001 - already gone
        pass


def _error(line: dict[str, Any]) -> SheetRejected:
    e = line["error"]
    return SheetRejected(int(e["status"]), str(e["code"]), str(e["message"]), e.get("details"))


def _sheet_from(lines: list[bytes]) -> Sheet:
    if not lines:
        raise SheetRejected(422, "sheet_unreadable", "the file could not be read")
    header = json.loads(lines[0])
    if "error" in header:
        raise _error(header)

    def rows() -> Iterator[tuple[int, dict[str, str]]]:
        for raw in lines[1:]:
            item = json.loads(raw)
            if isinstance(item, dict):
                if "error" in item:
                    raise _error(item)
                return
            number, values = item
            yield int(number), dict(zip(COLUMNS, values))

    return Sheet({int(k): v for k, v in header["columns"].items()}, header["ignored"], header["total"], rows(),
                 header.get("sheet_name"), header.get("sheets") or [])


# --- the child -----------------------------------------------------------------------------------
def _child(settings: dict[str, Any]) -> int:
    import resource

    memory = int(settings["memory"])
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (int(settings["cpu"]), int(settings["cpu"]) + 1))
    out = sys.stdout.buffer

    def emit(item: Any) -> None:
        out.write(json.dumps(item, separators=(",", ":"), ensure_ascii=False).encode("utf-8") + b"\n")

    try:
        data = sys.stdin.buffer.read()
        limits = SheetLimits(**settings["limits"])
        if settings["kind"] == "csv":
            sheet = read_csv(data, limits)
        else:
            sheet = read_xlsx(data, settings.get("sheet"), limits)
        emit({"columns": sheet.columns, "ignored": sheet.ignored_columns, "total": sheet.total,
              "sheet_name": sheet.sheet_name, "sheets": sheet.sheets})
        for number, row in sheet.rows:
            emit([number, [row[c] for c in COLUMNS]])
        emit({"end": True})
        return 0
    except SheetRejected as e:
        emit({"error": {"status": e.status, "code": e.code, "message": e.message, "details": e.details}})
        return 0
    except MemoryError:
        emit({"error": {"status": 413, "code": "sheet_too_large",
                        "message": "the file needs more memory to read than the import allows"}})
        return 0
    except Exception as e:  # noqa: BLE001 - damaged workbooks raise anything (XML errors included)
        emit({"error": {"status": 422, "code": "invalid_xlsx" if settings["kind"] != "csv" else "invalid_csv",
                        "message": f"the file cannot be read: {type(e).__name__}"}})
        return 0


if __name__ == "__main__":
    sys.exit(_child(json.loads(sys.argv[1])))
