"""A short-lived, per-process memo for the relay's read-mostly lookups.

Every chat call needs the model, its current price, its channels, the org's tier and its
BYOK keys; reading them from PostgreSQL on every call costs more CPU than the whole rest of
the relay. They change rarely, so each replica keeps them for `ttl_s` (about a second); a
write made through this replica drops the affected entries at once, and other replicas see
it within the TTL, the same contract as the key cache. A TTL of 0 turns caching off.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")
MAX_ENTRIES = 10_000


class TtlCache:
    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._entries: dict[Hashable, tuple[float, Any]] = {}
        # One load per key at a time: when an entry expires under load, every concurrent
        # call would otherwise run the same queries at once (32 connections, 32 loads).
        self._loading: dict[Hashable, asyncio.Future[Any]] = {}

    async def get(self, key: Hashable, load: Callable[[], Awaitable[T]]) -> T:
        if self.ttl_s <= 0:
            return await load()
        now = time.monotonic()
        hit = self._entries.get(key)
        if hit is not None and now - hit[0] < self.ttl_s:
            value: T = hit[1]
            return value
        pending = self._loading.get(key)
        if pending is not None:
            try:
                shared: T = await asyncio.shield(pending)
                return shared
            except asyncio.CancelledError:
                me = asyncio.current_task()
                if not pending.cancelled() or (me is not None and me.cancelling()):
                    raise  # this caller was cancelled (too), not only the load
                # The call that was loading it was cancelled: load it here instead.
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        try:
            value = await load()
        except BaseException as exc:
            if self._loading.get(key) is future:
                del self._loading[key]
            if isinstance(exc, asyncio.CancelledError):
                future.cancel()
            else:
                future.set_exception(exc)
                future.exception()  # retrieved: no warning when nobody else was waiting
            raise
        if self._loading.get(key) is future:  # not invalidated while it loaded
            del self._loading[key]
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            self._entries[key] = (now, value)
        future.set_result(value)
        return value

    def invalidate(self, predicate: Callable[[Hashable], bool] | None = None) -> None:
        """Drop entries (and forget loads in flight, whose results may predate the write)."""
        if predicate is None:
            self._entries.clear()
            self._loading.clear()
            return
        for key in [k for k in self._entries if predicate(k)]:
            del self._entries[key]
        for key in [k for k in self._loading if predicate(k)]:
            del self._loading[key]


def deferred(fn: Callable[..., Awaitable[T]], *args: Any) -> Callable[[], Awaitable[T]]:
    """A `load` for `TtlCache.get` that calls `fn(*args)`, with the arguments bound now
    (a lambda in a loop would see the loop variable's last value)."""
    return lambda: fn(*args)
