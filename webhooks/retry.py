"""When to try a failed delivery again, and when to give up on an endpoint."""

from __future__ import annotations

import random
from typing import Final

# Delays after the 1st, 2nd, ... failed attempt (CONTRACT §9): 5 s, 5 min, 30 min, 2 h, 5 h,
# 10 h, 10 h. Eight attempts in all, over about 27.5 hours.
SCHEDULE: Final = (5, 300, 1800, 7200, 18000, 36000, 36000)
MAX_ATTEMPTS: Final = len(SCHEDULE) + 1
JITTER: Final = 0.2
MIN_RETRY_AFTER: Final = 1.0
# A Retry-After beyond this is not believed: the schedule still bounds how late we try.
MAX_RETRY_AFTER: Final = 36000
# An endpoint that has failed every attempt for this long is disabled.
DISABLE_AFTER_SECONDS: Final = 5 * 24 * 3600


def next_delay(
    failed_attempts: int,
    *,
    retry_after: float | None = None,
    max_attempts: int | None = None,
    rng: random.Random | None = None,
) -> float | None:
    """Seconds until the next attempt after `failed_attempts` failures, or None: give up.

    A `Retry-After` from the receiver replaces the scheduled delay (within MAX_RETRY_AFTER).
    """
    limit = min(max_attempts or MAX_ATTEMPTS, MAX_ATTEMPTS)
    if failed_attempts >= limit:
        return None
    if retry_after is not None and retry_after >= 0:
        # at least a second: `Retry-After: 0` must not spend every attempt at once
        return min(max(retry_after, MIN_RETRY_AFTER), MAX_RETRY_AFTER)
    base = SCHEDULE[failed_attempts - 1]
    spread = (rng or random).uniform(-JITTER, JITTER)
    return base * (1 + spread)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a `Retry-After` header in delay-seconds form; None when absent or odd."""
    if value is None:
        return None
    value = value.strip()
    return float(value) if value.isdigit() else None
