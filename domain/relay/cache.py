"""A short-lived, per-process memo for the relay's read-mostly lookups.

Every chat call needs the model, its current price, its channels, the org's tier and its
BYOK keys; reading them from PostgreSQL on every call costs more CPU than the whole rest of
the relay. They change rarely, so each replica keeps them for `ttl_s` (about a second); a
write made through this replica drops the affected entries at once, and other replicas see
it within the TTL, the same contract as the key cache. A TTL of 0 turns caching off.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")
MAX_ENTRIES = 10_000


class TtlCache:
    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._entries: dict[Hashable, tuple[float, Any]] = {}

    async def get(self, key: Hashable, load: Callable[[], Awaitable[T]]) -> T:
        if self.ttl_s <= 0:
            return await load()
        now = time.monotonic()
        hit = self._entries.get(key)
        if hit is not None and now - hit[0] < self.ttl_s:
            value: T = hit[1]
            return value
        value = await load()
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        self._entries[key] = (now, value)
        return value

    def invalidate(self, predicate: Callable[[Hashable], bool] | None = None) -> None:
        if predicate is None:
            self._entries.clear()
            return
        for key in [k for k in self._entries if predicate(k)]:
            del self._entries[key]
