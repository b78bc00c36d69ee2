"""The time the domain reads, passed in so tests can move it instead of sleeping.

Code that decides by elapsed time (a cache's TTL, how often `last_used_at` is written, a
breaker's cooldown) takes a `Clock` and defaults to `SYSTEM_CLOCK`; a test passes its own
and advances it. Where the comparison runs in SQL, the clock's `now()` goes in as a
parameter rather than the database's `now()`.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """Wall-clock time, timezone-aware UTC: for timestamps stored or compared with them."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary start that never go back: for intervals in memory."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()


SYSTEM_CLOCK: Clock = SystemClock()
