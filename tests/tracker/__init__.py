"""Tests of the tracker kind (issue 7): UIDs, references, delivery, async jobs, the HTTP area."""
