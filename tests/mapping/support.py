"""Helpers for the mapping tests: sheet builders and a rig serving the mapping areas on a port.

``MappingRig`` extends the delivery rig (real PostgreSQL, Redis, simulator on a port,
dispatcher on demand) with the gateway's mapping pieces wired like ``dhis2gw.mapping.wiring``
does, served by a ``Router(StaticAuthenticator())`` through a real ``GatewaySite`` on
127.0.0.1:0, together with the ingest API (so ``POST /api/v2/aggregate`` works).
"""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import treq
from twisted.internet import defer, reactor

from dhis2gw.api.mappings import MappingsApi, MetadataApi
from dhis2gw.api.routing import Router
from dhis2gw.api.site import GatewaySite
from dhis2gw.api.submissions import IngestApi
from dhis2gw.api.table import mount_ingest
from dhis2gw.mapping.importer import MappingImporter
from dhis2gw.mapping.lookup import CachedMappings, SharedVersion
from dhis2gw.mapping.metadata_cache import MetadataCache
from dhis2gw.mapping.prevalidation import PreValidator
from dhis2gw.mapping.rows import COLUMNS
from dhis2gw.mapping.sheets import SheetLimits
from dhis2gw.storage.mappings import MappingAdminStore
from tests.support.delivery import DeliveryRig
from tests.support.fake_auth import StaticAuthenticator

OPERATOR = {"Authorization": ["Test operator 1"]}
ADMIN = {"Authorization": ["Test admin 1"]}
SUBMITTER = {"Authorization": ["Test submitter 7"]}


def sample_rows(n: int, source: str = "", instance: str = "", prefix: str = "C") -> list[dict[str, str]]:
    """n valid data-value mapping rows with distinct codes."""
    return [{"code": f"{prefix}{i:06d}", "what": "de", "name": f"Indicator {i}", "description": "generated",
             "dataset": "uFaVMlw4qxK", "dataelement": "Re46C6Apebu", "category_option_combo": "HllvX50cXC0",
             "category_option": "", "category_combo": "", "instance_name": instance, "source_name": source,
             "source_orgunit": "", "destination_orgunit": ""} for i in range(n)]


def make_csv(rows: Iterable[dict[str, str]], header: Sequence[str] = COLUMNS, delimiter: str = ",",
             bom: bool = False) -> bytes:
    """A CSV file; ``header`` gives the header cells (any case), matched to COLUMNS by position."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([row.get(c, "") for c in COLUMNS])
    data = out.getvalue().encode("utf-8")
    return (b"\xef\xbb\xbf" + data) if bom else data


def make_xlsx(rows: Iterable[dict[str, Any]], header: Sequence[str] = COLUMNS,
              sheets: Sequence[str] = ("Mappings",), data_sheet: str | None = None) -> bytes:
    """An XLSX workbook with ``sheets``; the rows go on ``data_sheet`` (default: the first)."""
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    target = data_sheet or sheets[0]
    for name in sheets:
        ws = workbook.create_sheet(name)
        if name == target:
            ws.append(list(header))
            for row in rows:
                ws.append([row.get(c, "") for c in COLUMNS])
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


@dataclass
class Answer:
    """An HTTP answer: status, headers, raw body, JSON body (or None)."""

    code: int
    headers: Any
    raw: bytes
    json: Any


@dataclass
class _Entry:
    instance_name: str


class MappingRig(DeliveryRig):
    """DeliveryRig + mapping lookups, importer, metadata cache, pre-validation, API on a port."""

    max_body_bytes = 10 * 1024 * 1024
    limits = SheetLimits()
    prevalidate = True

    async def rig_setup(self) -> None:
        await super().rig_setup()
        self.mapping_version = SharedVersion(self.redis, reactor, f"{self.prefix}:mappings:version")
        self.cached = CachedMappings(self.db, self.mapping_version)
        self.kind.mappings = self.cached
        self.metadata = MetadataCache(self.db, {"main": self.client}, reactor,
                                      SharedVersion(self.redis, reactor, f"{self.prefix}:metadata:version"))
        if self.prevalidate:
            self.kind.validator = PreValidator(self.metadata)
        self.importer = MappingImporter(self.db, reactor, self.redis, self.prefix, on_change=self.cached.changed)
        self.admin_store = MappingAdminStore(self.db)
        router = Router(StaticAuthenticator())
        router.mount("/api/v2", MappingsApi(self.admin_store, self.importer, self.cached.changed, self.limits))
        router.mount("/api/v2", MetadataApi(self.metadata))
        mount_ingest(router, IngestApi(self.kinds, self.store, self.queue, {"main": _Entry("main")}))
        self.router = router
        site = GatewaySite(router.resource(), max_body_bytes=self.max_body_bytes)
        self.port = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)
        self.base = f"http://127.0.0.1:{self.port.getHost().port}"
        await self.db.execute("test.clear", "DELETE FROM dhis2_mappings")
        # The submitter of SUBMITTER's headers, so ingest can record its submissions.
        await self.db.execute("test.user", "INSERT INTO users (id, uid, username, role, password_hash) VALUES"
                              " (7, 'uSubmitter7', 'submitter7', 'submitter', 'x') ON CONFLICT DO NOTHING")
        await self.cached.changed()

    async def call(self, method: str, path: str, headers: dict[str, list[str]] | None = None,
                   body: Any = None, data: bytes | None = None, files: Any = None,
                   content_type: str | None = None) -> Answer:
        """One request to the rig's API; JSON bodies are encoded, answers decoded when JSON."""
        hdrs = dict(headers if headers is not None else OPERATOR)
        kwargs: dict[str, Any] = {}
        if body is not None:
            kwargs["data"] = json.dumps(body).encode()
            hdrs["Content-Type"] = ["application/json"]
        elif data is not None:
            kwargs["data"] = data
            if content_type:
                hdrs["Content-Type"] = [content_type]
        elif files is not None:
            kwargs["files"] = files
        response = await treq.request(method, self.base + path, headers=hdrs, persistent=False, **kwargs)
        raw = await response.content()
        ctype = (response.headers.getRawHeaders("content-type") or [""])[0]
        parsed = json.loads(raw) if ctype.startswith("application/json") and raw else None
        return Answer(response.code, response.headers, raw, parsed)

    async def refresh_metadata(self) -> None:
        """Fill the metadata cache from the simulator."""
        await self.metadata.refresh("main")


def wait(seconds: float) -> defer.Deferred[None]:
    """Let the reactor run for a while."""
    from twisted.internet.task import deferLater

    return deferLater(reactor, seconds, lambda: None)
