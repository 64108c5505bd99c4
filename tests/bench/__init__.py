"""Benchmarks: scripts run by hand, not tests (nothing here is collected by pytest)."""
