"""A DeliveryRig with the tracker kind, and tracker payloads built on the simulator's metadata."""
from __future__ import annotations

from typing import Any

from dhis2gw.interfaces import IngestRequest, Prepared
from dhis2gw.kinds.tracker import TrackerKind
from dhis2gw.storage.uid_map import UidMapStore
from tests.support.delivery import DeliveryRig

# UIDs fixed in dhis2gw/sim/country.yml (see tests/sim/support.py)
FAC_NR = "ty5AJ6ZU5f7"        # Northern Region facility: the child programme is assigned here
FAC_CR = "v6Y4Dev9q4Q"        # Coastal facility: not assigned (E1041 / E1029)
TET_PERSON = "wUDUIqHvKBT"
TEA_FIRST, TEA_LAST, TEA_DOB, TEA_NATIONAL_ID = "Nx35aDI8hlO", "yniiXK6gaAZ", "gG0gOd8XsCL", "aK0Yapf1vM1"
PR_CHILD = "x77Cvs1U2W8"
PS_BIRTH, PS_VACC = "mfldQTsPucY", "oEZP0xOmRXt"
DE_BIRTH_WEIGHT, DE_VACCINE = "EUBJhFXsCXe", "vLuEXTZB6VP"
RT_MOTHER_CHILD = "zQt6WFITWa0"


def person(first: str, last: str = "Okello", dob: str = "2024-03-01", **extra: Any) -> dict[str, Any]:
    """A tracked entity (Person) with the mandatory attributes."""
    attrs = [{"attribute": TEA_FIRST, "value": first}, {"attribute": TEA_LAST, "value": last},
             {"attribute": TEA_DOB, "value": dob}]
    return {"trackedEntityType": TET_PERSON, "orgUnit": FAC_NR, "attributes": attrs, **extra}


def enrollment(**extra: Any) -> dict[str, Any]:
    """An enrollment in the child programme at the Northern facility."""
    return {"program": PR_CHILD, "orgUnit": FAC_NR, "enrolledAt": "2024-03-02", "status": "ACTIVE", **extra}


def birth_event(weight: int = 3200, **extra: Any) -> dict[str, Any]:
    """A Birth stage event."""
    return {"programStage": PS_BIRTH, "program": PR_CHILD, "orgUnit": FAC_NR, "occurredAt": "2024-03-02",
            "status": "COMPLETED", "dataValues": [{"dataElement": DE_BIRTH_WEIGHT, "value": str(weight)}], **extra}


def nested_payload(first: str = "Amina", reference: str = "P-1") -> dict[str, Any]:
    """One person with one enrollment and one event, nested, identified by ``reference``."""
    return {"trackedEntities": [person(first, reference=reference, enrollments=[
        enrollment(reference=f"{reference}-E", events=[birth_event(reference=f"{reference}-B")])])]}


def flat_payload(prefix: str = "F") -> dict[str, Any]:
    """Two people, enrollments, events and a relationship, flat, linked by references only."""
    return {
        "trackedEntities": [person("Mother", reference=f"{prefix}-M"), person("Child", reference=f"{prefix}-C")],
        "enrollments": [enrollment(reference=f"{prefix}-CE", trackedEntity=f"{prefix}-C"),
                        enrollment(reference=f"{prefix}-ME", trackedEntity=f"{prefix}-M")],
        "events": [birth_event(reference=f"{prefix}-CB", enrollment=f"{prefix}-CE"),
                   {"programStage": PS_VACC, "program": PR_CHILD, "orgUnit": FAC_NR, "occurredAt": "2024-04-02",
                    "enrollment": f"{prefix}-CE", "reference": f"{prefix}-CV",
                    "dataValues": [{"dataElement": DE_VACCINE, "value": "BCG"}]}],
        "relationships": [{"relationshipType": RT_MOTHER_CHILD, "reference": f"{prefix}-R",
                           "from": {"trackedEntity": f"{prefix}-M"}, "to": {"trackedEntity": f"{prefix}-C"}}],
    }


class TrackerRig(DeliveryRig):
    """DeliveryRig + ``self.tracker`` (TrackerKind with a real uid_map) in ``self.kinds``."""

    async_threshold = 1024 * 1024
    source_name: str | None = "clinic-emr"

    async def rig_setup(self) -> None:
        await super().rig_setup()
        self.uid_map = UidMapStore(self.db)
        self.tracker = TrackerKind(self.uid_map, self.async_threshold, poll_interval=0.05, poll_max_interval=0.2,
                                   unknown_job_grace=0.5)
        self.kinds["tracker"] = self.tracker

    async def prepare(self, body: dict[str, Any], query: dict[str, str] | None = None) -> Prepared:
        """What ingest's prepare step makes of ``body``."""
        return await self.tracker.prepare(IngestRequest(body, None, self.source_name, "main", "main", query or {}))

    async def submit_tracker(self, body: dict[str, Any], query: dict[str, str] | None = None,
                             push: bool = True) -> tuple[int, Prepared]:
        """Prepare, record and queue one tracker submission like ingest does."""
        prepared = await self.prepare(body, query)
        return await self.record("tracker", body, prepared, push), prepared

    def tracker_posts(self) -> list[Any]:
        """Every POST /api/tracker the simulator received."""
        return [r for r in self.sim.store.requests if r.method == "POST" and r.path.rstrip("/").endswith("/tracker")]
