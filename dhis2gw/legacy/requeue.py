"""``dhis2gw import-legacy --requeue``: deliver what the Go dhis2gw never delivered.

The submissions imported from ``submission_log`` rows that were ``queued`` or ``failed`` there
are in this gateway as ``failed`` (nothing sends them by surprise). Requeueing one:

1. prepares its DHIS2 payload again from the original request with this gateway's aggregate
   kind (its mappings — ``default``/``default`` rows apply to everyone —, exact value text, no
   forced ``completeDate``); a request that no longer maps stays ``failed`` and is listed;
2. requeues it with ``RequeueService.requeue_chunk``, the operators' requeue path: back to
   ``queued`` with a ``requeued`` event naming ``import-legacy``, its id pushed to the
   destination's ready list, so the running gateway delivers it once. When Redis does not answer, the rows
   stay ``queued`` and the gateway's reconciler pushes them at its next start or pass.

A row requeued once has a ``requeued`` event, so a second ``--requeue`` leaves it alone.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from twisted.internet.interfaces import IReactorTime

from dhis2gw.interfaces import IngestRequest
from dhis2gw.kinds.aggregate import AggregateKind
from dhis2gw.legacy.convert import IMPORT_ACTOR
from dhis2gw.operations.requeue import RequeueCounts, RequeueService
from dhis2gw.queue.feed import SubmissionQueue
from dhis2gw.storage.legacy_target import ImportedSubmissions
from dhis2gw.storage.logs import LogStore
from dhis2gw.storage.mappings import MappingStore
from dhis2gw.storage.submissions import SubmissionStore


async def requeue_imported(clock: IReactorTime, db: Any, queue: SubmissionQueue, config: Any, ids: Sequence[int],
                           chunk: int = 500) -> dict[str, Any]:
    """Prepare and requeue the imported submissions ``ids``; return counters and the rows left out."""
    kind = AggregateKind.from_config(config, MappingStore(db))
    imported = ImportedSubmissions(db)
    requeue = RequeueService(clock, LogStore(db), SubmissionStore(db), queue)
    counts = RequeueCounts()
    not_prepared: list[str] = []
    for start in range(0, len(ids), chunk):
        ready: list[int] = []
        for row in await imported.payloads(ids[start:start + chunk]):
            try:
                prepared = await kind.prepare(IngestRequest(row["payload"], None, None, row["destination"],
                                                            _instance(config, row["destination"]), {}))
            except Exception as e:  # noqa: BLE001 - KindError (unmapped codes, bad period…): listed, left failed
                not_prepared.append(f"submission {row['id']}: {getattr(e, 'message', None) or e}")
                continue
            await imported.set_prepared(row["id"], prepared.dhis2_payload, prepared.import_params,
                                        prepared.value_count)
            ready.append(row["id"])
        await requeue.requeue_chunk(ready, IMPORT_ACTOR, False, counts)
    return {"selected": len(ids), "requeued": counts.requeued, "enqueued": counts.enqueued,
            "not_pushed": counts.not_pushed, "not_prepared": len(not_prepared), "not_prepared_rows": not_prepared}


def _instance(config: Any, destination: str) -> str:
    entry = config.destinations().get(destination) if hasattr(config, "destinations") else None
    return entry.instance_name if entry is not None else destination
