"""Group commit on its own: a lone call goes at once, concurrent calls go together, at most
`max_in_flight` batches run, and one bad item fails only its own caller."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from domain.relay.group_commit import GroupCommit


async def settle_down() -> None:
    """Let every ready task run until the loop is idle again."""
    for _ in range(10):
        await asyncio.sleep(0)


class Recorder:
    def __init__(self, *, bad: int | None = None) -> None:
        self.batches: list[list[int]] = []
        self.running = self.most_running = 0
        self.release = asyncio.Event()
        self.bad = bad

    async def run(self, items: Sequence[int]) -> list[int]:
        self.batches.append(list(items))
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await self.release.wait()
            if self.bad in items:
                raise ValueError(f"bad item {self.bad}")
            return [i * 10 for i in items]
        finally:
            self.running -= 1


async def test_a_lone_call_goes_at_once() -> None:
    rec = Recorder()
    rec.release.set()
    commit = GroupCommit(rec.run)
    assert await commit.submit(4) == 40
    assert rec.batches == [[4]]


async def test_calls_that_queue_meanwhile_go_together_within_the_bounds() -> None:
    rec = Recorder()
    commit = GroupCommit(rec.run, max_batch=8, max_in_flight=2)
    calls = [asyncio.create_task(commit.submit(i)) for i in range(30)]
    await settle_down()
    # The first two callers found a free slot each; everyone else waits for one.
    assert rec.batches == [[0], [1]]
    rec.release.set()
    assert await asyncio.gather(*calls) == [i * 10 for i in range(30)]
    assert rec.most_running == 2
    assert all(len(b) <= 8 for b in rec.batches)
    assert sorted(i for b in rec.batches for i in b) == list(range(30))
    assert len(rec.batches) == 2 + 4  # 28 queued callers in batches of at most 8
    await commit.drain()


async def test_a_failing_batch_is_retried_item_by_item() -> None:
    rec = Recorder(bad=5)
    commit = GroupCommit(rec.run, max_in_flight=1)
    first = asyncio.create_task(commit.submit(0))
    await settle_down()
    rest = [asyncio.create_task(commit.submit(i)) for i in range(1, 9)]
    await settle_down()
    rec.release.set()
    results = await asyncio.gather(first, *rest, return_exceptions=True)
    assert isinstance(results[5], ValueError)
    assert [r for i, r in enumerate(results) if i != 5] == [i * 10 for i in range(9) if i != 5]
    assert [1, 2, 3, 4, 5, 6, 7, 8] in rec.batches  # the batch that failed whole
    assert [5] in rec.batches and [6] in rec.batches  # then each item alone


async def test_a_cancelled_caller_still_has_its_item_run() -> None:
    rec = Recorder()
    commit = GroupCommit(rec.run, max_in_flight=1)
    first = asyncio.create_task(commit.submit(1))
    await settle_down()
    second = asyncio.create_task(commit.submit(2))
    await settle_down()
    second.cancel()
    await settle_down()
    assert not second.done()  # the cancellation waits for the item's own outcome
    rec.release.set()
    with pytest.raises(asyncio.CancelledError):
        await second
    assert await first == 10
    await commit.drain()
    assert rec.batches == [[1], [2]]


async def test_a_wrong_number_of_results_fails_the_callers() -> None:
    async def short(items: Sequence[int]) -> list[int]:
        return []

    with pytest.raises(RuntimeError, match="returned 0 results"):
        await GroupCommit(short).submit(1)
