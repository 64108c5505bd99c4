"""Delivery: the dispatcher, per-destination circuit breakers and the retry policy."""
