"""The status vocabulary (dhis2gw.storage.statuses) is the schema's, and the other modules use it."""
from __future__ import annotations

import re
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from dhis2gw.dhis2.outcome import FINAL_KINDS
from dhis2gw.storage import statuses

MIGRATION = (Path(__file__).resolve().parents[2] / "migrations" / "0001_initial.sql").read_text()


def _listed(pattern: str) -> tuple[str, ...]:
    found = re.search(pattern, MIGRATION)
    assert found is not None, pattern
    return tuple(re.findall(r"'(\w+)'", found.group(1)))


class StatusVocabularyTests(SynchronousTestCase):
    """One definition, agreeing with PostgreSQL."""

    def test_statuses_are_the_check_constraint(self) -> None:
        """STATUSES is the submissions.status CHECK constraint, in its order."""
        self.assertEqual(statuses.STATUSES, _listed(r"CHECK \(status IN \(([^)]*)\)\)"))

    def test_pending_states_are_the_reconciler_index(self) -> None:
        """PENDING_STATES is the predicate of the reconciler's partial index."""
        self.assertEqual(statuses.PENDING_STATES, _listed(r"submissions_pending[^;]*WHERE status IN \(([^)]*)\)"))

    def test_pending_and_final_partition_the_statuses(self) -> None:
        """Every status is pending or final, never both; requeueable ones are final."""
        self.assertEqual(sorted(statuses.PENDING_STATES + statuses.FINAL_STATES), sorted(statuses.STATUSES))
        self.assertFalse(set(statuses.PENDING_STATES) & set(statuses.FINAL_STATES))
        self.assertLessEqual(set(statuses.REQUEUEABLE), set(statuses.FINAL_STATES))

    def test_final_status_of_each_final_kind(self) -> None:
        """Each final OutcomeKind maps to the final status of the same name."""
        self.assertEqual(set(statuses.FINAL_STATUS), set(FINAL_KINDS))
        for kind, status in statuses.FINAL_STATUS.items():
            self.assertEqual((kind.value, status in statuses.FINAL_STATES), (status, True))

    def test_sql_list(self) -> None:
        """sql_list renders constants for an IN list and refuses anything else."""
        self.assertEqual(statuses.sql_list(statuses.PENDING_STATES), "('queued', 'processing', 'retrying')")
        self.assertRaises(ValueError, statuses.sql_list, ("queued'); DROP TABLE submissions; --",))

    def test_other_modules_use_the_definition(self) -> None:
        """The store, the worker's recording, the log filters and schemas hold the same objects, not copies."""
        from dhis2gw.delivery import recording
        from dhis2gw.operations import filters, schemas
        from dhis2gw.storage import submissions
        self.assertIs(submissions.FINAL_STATES, statuses.FINAL_STATES)
        self.assertIs(submissions.PENDING_STATES, statuses.PENDING_STATES)
        self.assertIs(recording.FINAL_STATUS, statuses.FINAL_STATUS)
        self.assertIs(filters.STATUSES, statuses.STATUSES)
        self.assertEqual(schemas.LOG_ITEM["properties"]["status"]["enum"], list(statuses.STATUSES))
