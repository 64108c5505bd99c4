"""Retry policy: exponential backoff with full jitter, capped (DESIGN.md §4)."""
from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """``delay(n)`` for the n-th job-level failure (1-based): uniform in [0, min(cap, base·2^(n-1))].

    ``Retry-After`` from DHIS2 or a proxy, when given, is a floor.
    """

    base: float = 30.0
    cap: float = 3600.0
    max_retries: int = 3
    random: Callable[[], float] = random.random

    def delay(self, failures: int, retry_after: float | None = None) -> float:
        """Seconds to wait before the next attempt."""
        ceiling: float = min(self.cap, self.base * (2 ** max(0, failures - 1)))
        delay = ceiling * self.random()
        if retry_after is not None:
            delay = max(delay, retry_after)
        return delay

    def exhausted(self, failures: int) -> bool:
        """True when ``failures`` job-level failures leave no retry (the first attempt is not a retry)."""
        return failures > self.max_retries
