"""Replaying a queue against a simulator synchronously: batched (plan/merge/attribute) or one by one.

Used by the hypothesis test of tests/delivery/test_batching.py: the batched replay sends the
requests `dhis2gw.delivery.batching.plan` makes, interprets DHIS2's answer with the client's own
`interpret_data_value_set_response`, and delivers alone every submission `attribute` cannot place,
exactly like `DestinationWorker._attempt_batch` does (its loop is covered end to end by the
DeliveryRig tests).
"""
from __future__ import annotations

import copy
import json
from functools import lru_cache
from typing import Any
from urllib.parse import urlencode

from dhis2gw.delivery.batching import BatchSettings, attribute, merge, plan
from dhis2gw.dhis2.interpret import interpret_data_value_set_response
from dhis2gw.dhis2.outcome import Outcome, OutcomeKind
from dhis2gw.dhis2.versions import parse_version
from dhis2gw.sim import Metadata
from tests.sim.support import StubClient


@lru_cache(maxsize=1)
def _seeded() -> Metadata:
    return Metadata.load_default()

STATUS = {OutcomeKind.DELIVERED: "delivered", OutcomeKind.PARTIAL: "partial", OutcomeKind.REJECTED: "rejected"}


class Replay:
    """One simulator at ``version``, fed with rows (``id``, ``kind``, ``dhis2_payload``, ``import_params``)."""

    def __init__(self, version: str) -> None:
        self.client = StubClient(version, metadata=copy.deepcopy(_seeded()))
        self.version = parse_version(version)
        self.posts = 0

    def post(self, payload: dict[str, Any], params: dict[str, Any]) -> Outcome:
        """One ``POST /api/dataValueSets`` interpreted like the gateway's client does."""
        self.posts += 1
        query = urlencode(dict({"importStrategy": "CREATE_AND_UPDATE"}, **params))
        code, body, _ = self.client.post(f"/api/dataValueSets?{query}", payload)
        return interpret_data_value_set_response(code, {"Content-Type": "application/json"}, json.dumps(body).encode(),
                                                 version=self.version)

    def alone(self, rows: list[dict[str, Any]]) -> dict[int, str]:
        """Deliver each row by itself, in order; the final status of each."""
        return {row["id"]: STATUS.get(self.post(row["dhis2_payload"], row["import_params"]).kind, "?")
                for row in rows}

    def batched(self, rows: list[dict[str, Any]], settings: BatchSettings = BatchSettings()) -> dict[int, str]:
        """Deliver the rows the way the worker does with batching on; the final status of each."""
        out: dict[int, str] = {}
        for chunk in plan(rows, settings):
            if len(chunk) == 1:
                out.update(self.alone(chunk))
                continue
            batch = merge(chunk)
            outcome = self.post(batch.payload, chunk[0]["import_params"])
            for row, mine in zip(chunk, attribute(batch, outcome)):
                if mine is None:
                    out.update(self.alone([row]))
                else:
                    out[row["id"]] = STATUS.get(mine.kind, "?")
        return out

    def state(self) -> dict[tuple[str, ...], Any]:
        """What DHIS2 holds: data values by natural key -> (value, deleted), and completeness registrations."""
        store = self.client.sim.store
        out: dict[tuple[str, ...], Any] = {k: (r.value, r.deleted) for k, r in store.data_values.items()}
        out.update({("complete", *k): r["completeDate"] for k, r in store.completions.items()})
        return out
