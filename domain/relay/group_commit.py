"""Group commit: concurrent calls' writes run together, as one statement and one WAL flush.

Each billed call's settle is a durable commit, and under load the commits, not the work
in them, are what PostgreSQL and this process spend most on: a round trip, a statement's
parse and plan, an fsync, and the org's account row locked through it. Here, a call
that arrives while `max_in_flight` batches are already running waits for one of them to
finish and then goes out with every other call that queued meanwhile. A lone call goes
at once, so an idle relay adds no latency; a busy one needs fewer commits per call.

A batch is one statement, so it applies whole or not at all. If it fails, each of its
items is retried alone, so one bad item fails only its own caller.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    def __init__(
        self,
        run: Callable[[Sequence[T]], Awaitable[Sequence[R]]],
        *,
        max_batch: int = 64,
        max_in_flight: int = 2,
    ) -> None:
        """`run` takes items and returns one result per item, in order."""
        self._run = run
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._in_flight < self._max_in_flight:
            self._start()
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            # The item still runs with its batch (a settle must happen whether or not
            # anyone waits), and the cancellation goes on only once it has: a caller that
            # then cleans up (voids its hold) finds the outcome instead of racing it.
            if not future.done():
                await asyncio.wait([future])
            raise

    def _start(self) -> None:
        batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
        self._in_flight += 1
        task = asyncio.get_running_loop().create_task(self._run_batch(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_batch(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            try:
                results = await self._run([item for item, _ in batch])
            except Exception as exc:
                if len(batch) == 1:
                    _fail(batch[0][1], exc)
                    return
                for item, future in batch:  # isolate the item that made it fail
                    try:
                        (result,) = await self._run([item])
                    except Exception as one:
                        _fail(future, one)
                    else:
                        _resolve(future, result)
                return
            if len(results) != len(batch):
                raise RuntimeError(f"a batch of {len(batch)} returned {len(results)} results")
            for (_, future), result in zip(batch, results, strict=True):
                _resolve(future, result)
        except BaseException as exc:  # cancelled at shutdown, or a broken `run`
            for _, future in batch:
                _fail(future, exc)
            raise
        finally:
            self._in_flight -= 1
            self._next()

    def _next(self) -> None:
        if not self._queue or self._in_flight >= self._max_in_flight:
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # a batch task collected after its loop closed
            return
        self._start()

    async def drain(self) -> None:
        """Wait until every submitted item has run (shutdown and tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


def _resolve(future: asyncio.Future[R], result: R) -> None:
    if not future.done():
        future.set_result(result)


def _fail(future: asyncio.Future[R], exc: BaseException) -> None:
    if future.done():
        return
    if isinstance(exc, asyncio.CancelledError):
        future.cancel()
    else:
        future.set_exception(exc)
        future.exception()  # retrieved: a caller that stopped waiting must not log a warning
