"""Where the DHIS2 reference fixtures live in the test tree, and how to load them."""

from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def fixture_bytes(relative: str) -> bytes:
    """The raw bytes of ``tests/fixtures/<relative>``."""
    return (FIXTURES / relative).read_bytes()


def all_fixture_files() -> set[str]:
    """Every fixture file, as a path relative to the fixtures folder."""
    return {p.relative_to(FIXTURES).as_posix() for p in FIXTURES.rglob("*") if p.is_file()}
