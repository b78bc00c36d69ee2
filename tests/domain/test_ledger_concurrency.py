"""Concurrent requests on one hot account never spend more than it holds (DESIGN.md §3)."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from config.runtime import Resources
from domain.errors import DomainError
from tests.domain.factories import CREDIT, HOLDS, key_budget, make_api_key, make_org
from tests.domain.invariants import assert_books_balance, assert_key_books
from tests.fixtures.ledger import Ledger

POOL = 40  # the test engine's pool size (plus as much overflow)
HOUR = timedelta(hours=1)


async def _hammer(
    resources: Resources, org_id: uuid.UUID, *, tasks: int, cost: int, api_key_id: uuid.UUID | None
) -> Counter[str]:
    """`tasks` requests each reserving then settling `cost`, in separate transactions."""
    book = Ledger(resources.sessions)
    gate = asyncio.Semaphore(POOL)

    async def one(i: int) -> str:
        async with gate:
            try:
                res = await book.reserve(
                    org_id, cost, key=f"req:{i}:hold", expires_in=HOUR, api_key_id=api_key_id
                )
            except DomainError as exc:
                return exc.code
            await asyncio.sleep(0)  # let others in between reserve and settle, like a relay
            done = await book.settle(res.hold.id, cost)
            assert done.charged_micros == cost
            return "ok"

    return Counter(await asyncio.gather(*(one(i) for i in range(tasks))))


async def test_500_requests_on_a_1000_credit_account(resources: Resources) -> None:
    org_id = await make_org(resources.sessions, funded_micros=1_000 * CREDIT)
    outcome = await _hammer(resources, org_id, tasks=500, cost=7 * CREDIT, api_key_id=None)
    assert outcome == Counter({"ok": 142, "insufficient_credits": 358})
    books = await assert_books_balance(resources.sessions, org_id)
    assert (books.balance, books.available, books.pending_count) == (6 * CREDIT, 6 * CREDIT, 0)


async def test_500_requests_against_a_500_credit_key_budget(resources: Resources) -> None:
    org_id = await make_org(resources.sessions, funded_micros=10_000 * CREDIT)
    key_id = await make_api_key(resources.sessions, org_id, budget_micros=500 * CREDIT)
    outcome = await _hammer(resources, org_id, tasks=500, cost=7 * CREDIT, api_key_id=key_id)
    assert outcome == Counter({"ok": 71, "api_key_budget_exhausted": 429})
    assert await key_budget(resources.sessions, key_id) == (497 * CREDIT, 0)
    books = await assert_books_balance(resources.sessions, org_id)
    assert (books.balance, books.pending_count) == (9_503 * CREDIT, 0)
    await assert_key_books(resources.sessions, key_id)


async def test_concurrent_duplicates_apply_once(resources: Resources) -> None:
    """Retries racing the original (same idempotency key) all get the one result."""
    org_id = await make_org(resources.sessions, funded_micros=10 * CREDIT)
    book = Ledger(resources.sessions)

    credits = await asyncio.gather(
        *(
            book.credit(org_id, 5 * CREDIT, kind="purchase", key="cs_dup", actor="t")
            for _ in range(20)
        )
    )
    assert len({c.entry.id for c in credits}) == 1
    assert sum(not c.replayed for c in credits) == 1

    holds = await asyncio.gather(
        *(book.reserve(org_id, 15 * CREDIT, key="hold_dup", expires_in=HOUR) for _ in range(20))
    )
    assert len({h.hold.id for h in holds}) == 1
    assert sum(not h.replayed for h in holds) == 1
    hold_id = holds[0].hold.id

    settles = await asyncio.gather(*(book.settle(hold_id, 9 * CREDIT) for _ in range(20)))
    assert sum(not s.replayed for s in settles) == 1
    assert {s.charged_micros for s in settles} == {9 * CREDIT}
    entry_id = settles[0].entry_id
    assert entry_id is not None

    refunds = await asyncio.gather(
        *(book.refund(entry_id, key="rf", actor="ops", reason="dup") for _ in range(20)),
        return_exceptions=True,
    )
    assert all(not isinstance(r, BaseException) for r in refunds)
    books = await assert_books_balance(resources.sessions, org_id)
    assert (books.balance, books.available) == (15 * CREDIT, 15 * CREDIT)


async def test_sweepers_and_settles_race_without_double_release(resources: Resources) -> None:
    org_id = await make_org(resources.sessions, funded_micros=1_000 * CREDIT)
    key_id = await make_api_key(resources.sessions, org_id, budget_micros=1_000 * CREDIT)
    book = Ledger(resources.sessions)
    holds = [
        (await book.reserve(org_id, CREDIT, key=f"h{i}", expires_in=HOUR, api_key_id=key_id)).hold
        for i in range(200)
    ]
    later = datetime.now(UTC) + 2 * HOUR
    gate = asyncio.Semaphore(POOL)

    async def settle(i: int) -> None:
        async with gate:
            await book.settle(holds[i].id, CREDIT // 2)

    async def sweep() -> int:
        async with gate:
            return (await book.expire_stale_holds(now=later, limit=25)).expired

    await asyncio.gather(*(settle(i) for i in range(0, 200, 2)), *(sweep() for _ in range(12)))
    await book.expire_stale_holds(now=later, limit=500)
    books = await assert_books_balance(resources.sessions, org_id)
    assert books.pending_count == 0
    spent, reserved = await assert_key_books(resources.sessions, key_id)
    assert reserved == 0
    async with resources.sessions() as s:
        statuses = Counter(
            (await s.execute(select(HOLDS.c.status).where(HOLDS.c.org_id == org_id))).scalars()
        )
    # every settle charged exactly once (a hold swept first is billed late, from available)
    assert statuses["settled"] == 100 and statuses["expired"] == 100
    assert books.balance == 1_000 * CREDIT - 100 * (CREDIT // 2)
    assert spent == 100 * (CREDIT // 2)
