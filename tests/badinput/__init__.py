"""Bad-input suite: hostile and malformed requests against a whole gateway (no 5xx, no tracebacks)."""
