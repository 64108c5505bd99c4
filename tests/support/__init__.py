"""Test support: real PostgreSQL/Redis for the suite, per-run databases and key prefixes."""
