"""``dhis2gw import-legacy --requeue``: deliver what the Go dhis2gw never delivered.

The submissions imported from ``submission_log`` rows that were ``queued`` or ``failed`` there
are in this gateway as ``failed`` (nothing sends them by surprise). Requeueing one:

1. prepares its DHIS2 payload again from the original request with this gateway's aggregate
   kind (its mappings — ``default``/``default`` rows apply to everyone —, exact value text, no
   forced ``completeDate``); a request that no longer maps stays ``failed`` and is listed;
2. moves it back to ``queued`` with ``SubmissionStore.requeue`` (a ``requeued`` event naming
   ``import-legacy``) and pushes its id with ``SubmissionQueue.enqueue_many``: the operators'
   requeue path, so the running gateway delivers it once. When Redis does not answer, the rows
   stay ``queued`` and the gateway's reconciler pushes them at its next start or pass.

A row requeued once has a ``requeued`` event, so a second ``--requeue`` leaves it alone.
"""
from __future__ import annotations

from typing import Any, Sequence

from twisted.logger import Logger

from dhis2gw.interfaces import IngestRequest
from dhis2gw.kinds.aggregate import AggregateKind, default_kind_options
from dhis2gw.legacy.convert import IMPORT_ACTOR
from dhis2gw.queue.connection import RedisUnavailable
from dhis2gw.queue.feed import SubmissionQueue
from dhis2gw.storage.legacy_target import ImportedSubmissions
from dhis2gw.storage.mappings import MappingStore
from dhis2gw.storage.submissions import SubmissionStore

log = Logger()


async def requeue_imported(db: Any, queue: SubmissionQueue, config: Any, ids: Sequence[int],
                           chunk: int = 500) -> dict[str, Any]:
    """Prepare and requeue the imported submissions ``ids``; return counters and the rows left out."""
    kind = AggregateKind(MappingStore(db), **default_kind_options(config))
    imported = ImportedSubmissions(db)
    store = SubmissionStore(db)
    result: dict[str, Any] = {"selected": len(ids), "requeued": 0, "enqueued": 0, "not_pushed": 0,
                              "not_prepared": []}
    for start in range(0, len(ids), chunk):
        ready: list[int] = []
        for row in await imported.payloads(ids[start:start + chunk]):
            try:
                prepared = await kind.prepare(IngestRequest(row["payload"], None, None, row["destination"],
                                                            _instance(config, row["destination"]), {}))
            except Exception as e:  # noqa: BLE001 - KindError (unmapped codes, bad period…): listed, left failed
                result["not_prepared"].append(f"submission {row['id']}: {getattr(e, 'message', None) or e}")
                continue
            await imported.set_prepared(row["id"], prepared.dhis2_payload, prepared.import_params,
                                        prepared.value_count)
            ready.append(row["id"])
        moved = await store.requeue(ready, IMPORT_ACTOR)
        result["requeued"] += len(moved)
        by_dest: dict[str, list[int]] = {}
        for row in moved:
            by_dest.setdefault(row["destination"], []).append(row["id"])
        for dest, dest_ids in by_dest.items():
            try:
                result["enqueued"] += await queue.enqueue_many(dest, dest_ids, timeout=5.0)
            except RedisUnavailable as e:
                log.warn("Redis did not answer ({error}); the reconciler will push {n} requeued submission(s)",
                         error=e, n=len(dest_ids))
                result["not_pushed"] += len(dest_ids)
    result["not_prepared_count"] = len(result["not_prepared"])
    return result


def _instance(config: Any, destination: str) -> str:
    entry = config.destinations().get(destination) if hasattr(config, "destinations") else None
    return entry.instance_name if entry is not None else destination
