"""The relay's memo loads each key once however many calls ask at the same moment, and a
write that invalidates it is never undone by a load that started before the write."""

from __future__ import annotations

import asyncio

import pytest

from domain.relay.cache import TtlCache


class Loader:
    def __init__(self) -> None:
        self.calls = 0
        self.gate = asyncio.Event()
        self.fail: Exception | None = None

    async def __call__(self) -> int:
        self.calls += 1
        n = self.calls
        await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return n


async def test_concurrent_misses_share_one_load() -> None:
    cache, load = TtlCache(60), Loader()
    calls = [asyncio.create_task(cache.get("k", load)) for _ in range(32)]
    await asyncio.sleep(0)
    load.gate.set()
    assert await asyncio.gather(*calls) == [1] * 32
    assert load.calls == 1
    assert await cache.get("k", load) == 1 and load.calls == 1


async def test_a_failed_load_fails_its_waiters_and_is_not_kept() -> None:
    cache, load = TtlCache(60), Loader()
    load.fail = RuntimeError("db down")
    calls = [asyncio.create_task(cache.get("k", load)) for _ in range(3)]
    await asyncio.sleep(0)
    load.gate.set()
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results) and load.calls == 1
    load.fail = None
    assert await cache.get("k", load) == 2


async def test_an_invalidation_during_a_load_wins() -> None:
    cache, load = TtlCache(60), Loader()
    first = asyncio.create_task(cache.get(("org", 1), load))
    await asyncio.sleep(0)
    cache.invalidate(lambda k: k == ("org", 1))  # a write landed while it was loading
    second = asyncio.create_task(cache.get(("org", 1), load))
    await asyncio.sleep(0)
    load.gate.set()
    assert (await first, await second) == (1, 2)
    assert await cache.get(("org", 1), load) == 2  # the newer load is the one kept


async def test_a_cancelled_loader_does_not_cancel_the_others() -> None:
    cache, load = TtlCache(60), Loader()
    first = asyncio.create_task(cache.get("k", load))
    await asyncio.sleep(0)
    waiter = asyncio.create_task(cache.get("k", load))
    await asyncio.sleep(0)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    load.gate.set()
    assert await waiter == 2  # it loaded the value itself


async def test_a_zero_ttl_always_loads() -> None:
    cache, load = TtlCache(0), Loader()
    load.gate.set()
    assert [await cache.get("k", load) for _ in range(3)] == [1, 2, 3]
