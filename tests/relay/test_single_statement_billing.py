"""The relay's one-statement reserve and settle do exactly what the ledger's general path
does in the common case, and nothing at all otherwise (so the caller's fallback decides)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from api.runtime import Resources
from domain.budgets.models import BudgetRef
from domain.ledger import service as ledger
from domain.relay import repository as relay_repo
from tests.domain.factories import CREDIT, make_api_key, make_org, unique
from tests.domain.invariants import assert_books_balance

HOUR = timedelta(hours=1)


def _log(org_id: uuid.UUID, hold_id: uuid.UUID, request_id: str) -> dict[str, object]:
    return {
        "id": request_id,
        "org_id": org_id,
        "model": "m",
        "stream": False,
        "latency_ms": 3,
        "created_at": datetime.now(UTC),
        "status": "succeeded",
        "http_status": 200,
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "cost_micros": 7 * CREDIT,
        "list_cost_micros": 7 * CREDIT,
        "billing": "platform",
        "hold_id": hold_id,
    }


def _attempt(request_id: str) -> dict[str, object]:
    return {"request_id": request_id, "provider": "openai", "model": "m", "outcome": "ok",
            "latency_ms": 2, "http_status": 200}  # fmt: skip


async def _reserve(
    resources: Resources, org_id: uuid.UUID, amount: int, key: str
) -> uuid.UUID | None:
    return await relay_repo.reserve(
        resources.relay.direct, org_id, amount, key=key, reference=key, expires_in=HOUR
    )


async def _settle(
    resources: Resources, org_id: uuid.UUID, hold_id: uuid.UUID, cost: int
) -> tuple[bool, str]:
    request_id = unique("req")
    done = await relay_repo.settle_and_log(
        resources.relay.direct, hold_id, cost, _log(org_id, hold_id, request_id),
        _attempt(request_id),
    )  # fmt: skip
    return done, request_id


async def _count(resources: Resources, sql: str, **params: object) -> int:
    async with resources.sessions() as s:
        return int((await s.execute(text(sql), params)).scalar_one())


async def test_common_case_matches_the_ledger(resources: Resources) -> None:
    org_id = await make_org(resources.sessions, funded_micros=100 * CREDIT)
    hold_id = await _reserve(resources, org_id, 10 * CREDIT, unique("h"))
    assert hold_id is not None
    books = await assert_books_balance(resources.sessions, org_id)
    assert (books.balance, books.available, books.pending_count) == (100 * CREDIT, 90 * CREDIT, 1)

    done, request_id = await _settle(resources, org_id, hold_id, 7 * CREDIT)
    assert done
    books = await assert_books_balance(resources.sessions, org_id)
    assert (books.balance, books.available, books.pending_count) == (93 * CREDIT, 93 * CREDIT, 0)
    async with resources.sessions() as s:
        hold = await ledger.repo.get_hold(s, hold_id)
        debit = await ledger.repo.entry_by_key(s, f"hold:{hold_id}:settle")
    assert hold is not None and (hold.status, hold.settled_micros) == ("settled", 7 * CREDIT)
    assert debit is not None and debit.amount_micros == -7 * CREDIT
    assert (debit.balance_after_micros, debit.hold_id, debit.actor) == (
        93 * CREDIT,
        hold_id,
        "system",
    )
    assert (
        await _count(resources, "SELECT count(*) FROM request_logs WHERE id = :r", r=request_id)
        == 1
    )
    assert await _count(
        resources, "SELECT count(*) FROM request_attempts WHERE request_id = :r", r=request_id
    ) == 1  # fmt: skip
    # Settling again does nothing, and the general path then sees it as a replay.
    assert (await _settle(resources, org_id, hold_id, 7 * CREDIT))[0] is False
    async with resources.sessions.begin() as s:
        again = await ledger.settle(s, hold_id, 7 * CREDIT)
    assert again.replayed and again.charged_micros == 7 * CREDIT


async def test_uncommon_shapes_write_nothing(resources: Resources) -> None:
    org_id = await make_org(resources.sessions, funded_micros=20 * CREDIT)
    # Not enough credit, and a taken idempotency key: no hold, no movement.
    assert await _reserve(resources, org_id, 21 * CREDIT, unique("h")) is None
    key = unique("h")
    assert await _reserve(resources, org_id, 1 * CREDIT, key) is not None
    assert await _reserve(resources, org_id, 1 * CREDIT, key) is None
    books = await assert_books_balance(resources.sessions, org_id)
    assert (books.available, books.pending_count) == (19 * CREDIT, 1)

    # Holds the statement must leave to the general path: more than held, a key budget,
    # a budget policy, nothing held.
    async with resources.sessions.begin() as s:
        small = await ledger.reserve(s, org_id, 1 * CREDIT, key=unique("s"), expires_in=HOUR)
    key_id = await make_api_key(resources.sessions, org_id, budget_micros=50 * CREDIT)
    async with resources.sessions.begin() as s:
        keyed = await ledger.reserve(
            s, org_id, 1 * CREDIT, key=unique("k"), expires_in=HOUR, api_key_id=key_id
        )
    policy = uuid.uuid4()
    async with resources.sessions.begin() as s:
        await s.execute(
            text("INSERT INTO budget_policies (id, org_id, name, scope, scope_id, limit_micros,"
                 " mode) VALUES (:p, :o, 'p', 'key', :k, 1000000000, 'soft')"),
            {"p": policy, "o": org_id, "k": key_id},
        )  # fmt: skip
        budgeted = await ledger.reserve(
            s, org_id, 1 * CREDIT, key=unique("b"), expires_in=HOUR,
            budgets=[BudgetRef(policy, hard=False)],
        )  # fmt: skip
        empty = await ledger.reserve(s, org_id, 0, key=unique("z"), expires_in=HOUR)
    before = await assert_books_balance(resources.sessions, org_id)
    for hold, cost in (
        (small.hold.id, 2 * CREDIT),
        (keyed.hold.id, 1 * CREDIT),
        (budgeted.hold.id, 1 * CREDIT),
        (empty.hold.id, 0),
        (uuid.uuid4(), 0),
    ):
        done, request_id = await _settle(resources, org_id, hold, cost)
        assert done is False
        assert (
            await _count(resources, "SELECT count(*) FROM request_logs WHERE id = :r", r=request_id)
            == 0
        )
    after = await assert_books_balance(resources.sessions, org_id)
    assert (after.balance, after.available, after.pending_count) == (
        before.balance, before.available, before.pending_count,
    )  # fmt: skip


async def test_concurrent_one_statement_reserves_never_overspend(resources: Resources) -> None:
    org_id = await make_org(resources.sessions, funded_micros=1_000 * CREDIT)
    gate = asyncio.Semaphore(30)

    async def one(i: int) -> bool:
        async with gate:
            hold_id = await _reserve(resources, org_id, 7 * CREDIT, f"c:{org_id}:{i}")
            if hold_id is None:
                return False
            done, _ = await _settle(resources, org_id, hold_id, 7 * CREDIT)
            assert done
            return True

    results = await asyncio.gather(*(one(i) for i in range(300)))
    assert sum(results) == 142
    books = await assert_books_balance(resources.sessions, org_id)
    assert (books.balance, books.available, books.pending_count) == (6 * CREDIT, 6 * CREDIT, 0)


async def test_direct_statements_never_bind_a_missing_value_as_null(resources: Resources) -> None:
    """A forgotten parameter is a KeyError before anything is sent, not a NULL written."""
    org_id = await make_org(resources.sessions, funded_micros=5 * CREDIT)
    with pytest.raises(KeyError):
        await resources.relay.direct.fetchrow(
            relay_repo._RESERVE, {"b_org": org_id, "b_amount": CREDIT}
        )
    books = await assert_books_balance(resources.sessions, org_id)
    assert (books.available, books.pending_count) == (5 * CREDIT, 0)
