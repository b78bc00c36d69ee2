"""Random operation sequences against real PostgreSQL, checked against a reference model.

Hypothesis draws a list of operations (credit, adjust, reserve, settle, void, refund, expiry
sweeps) with small key spaces so idempotency keys repeat often, sometimes with different
parameters. Each operation runs in its own transaction that *commits even when the ledger
refuses*, so a refusal that left a partial write behind would show up. After every step the
books are checked against the §3 invariants and against a small model that predicts every
outcome and every balance exactly.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.runtime import Resources
from domain.errors import DomainError
from domain.ledger import repository as repo
from domain.ledger import service as ledger
from tests.domain.factories import make_api_key, make_org
from tests.domain.invariants import assert_books_balance, assert_key_books

HOUR = timedelta(hours=1)
FAR_FUTURE = datetime(2200, 1, 1, tzinfo=UTC)
Op = tuple[Any, ...]

# Weighted so that holds are usually settled or voided before a sweep expires them.
KINDS = ["reserve"] * 4 + ["settle"] * 4 + ["credit"] * 2 + ["adjust", "void", "refund", "expire"]
OPS: st.SearchStrategy[Op] = st.tuples(
    st.sampled_from(KINDS), st.integers(0, 90), st.integers(0, 7), st.booleans()
)


@dataclass
class HoldModel:
    id: uuid.UUID
    amount: int
    with_key: bool
    status: str = "pending"
    charged: int = 0


@dataclass
class Model:
    """What the ledger should say, computed independently of it."""

    budget: int
    balance: int = 0
    available: int = 0
    key_spent: int = 0
    key_reserved: int = 0
    entry_keys: dict[str, tuple[str, int]] = field(default_factory=dict)
    hold_keys: dict[str, tuple[int, bool]] = field(default_factory=dict)
    holds: list[HoldModel] = field(default_factory=list)
    by_key: dict[str, HoldModel] = field(default_factory=dict)
    debits: list[tuple[int, int, bool]] = field(default_factory=list)  # id, amount, with_key
    refunded: dict[int, str] = field(default_factory=dict)


def _key(prefix: str, x: int, y: int) -> str:
    """Keys 0 and 1 are retried with fixed parameters (replays); key 2 reuses key 0 with
    whatever parameters were drawn (usually a conflict); the rest are fresh."""
    return f"{prefix}{y}" if y < 2 else f"{prefix}0" if y == 2 else f"{prefix}{x}-{y}"


async def _run(resources: Resources, op: Any) -> tuple[Any, str | None]:
    """Run in a transaction that commits whatever happens; return (result, error code)."""
    async with resources.sessions.begin() as s:
        try:
            return await op(s), None
        except DomainError as exc:
            return None, exc.code


async def _step(resources: Resources, m: Model, org: uuid.UUID, key_id: uuid.UUID, op: Op) -> None:
    name, x, y, flag = op
    if name in ("credit", "adjust"):
        amount = x % 60 + 1 if name == "credit" else (x % 120 - 60 or 60)
        k = _key(name[0], x, y)
        if y < 2:  # a retry: same key, same parameters
            amount = 10 * y + 7 if name == "credit" else -(10 * y + 7)
        kind = "purchase" if name == "credit" else "adjustment"
        if name == "credit":
            result, error = await _run(
                resources,
                lambda s: ledger.credit(s, org, amount, kind=kind, key=f"{org}:{k}", actor="p"),
            )
        else:
            result, error = await _run(
                resources,
                lambda s: ledger.adjust(s, org, amount, key=f"{org}:{k}", actor="p", reason="r"),
            )
        if k in m.entry_keys:
            expected = None if m.entry_keys[k] == (kind, amount) else "conflict"
            assert error == expected and (error or result.replayed), (op, error)
        elif m.available + amount < 0:
            assert error == "insufficient_credits", (op, error)
        else:
            assert error is None and not result.replayed, (op, error)
            m.entry_keys[k] = (kind, amount)
            m.balance += amount
            m.available += amount
            assert result.entry.balance_after_micros == m.balance

    elif name == "reserve":
        amount, k, with_key = x % 61, _key("h", x, y), flag
        if y < 2:
            amount, with_key = 9 * y + 4, y == 1
        result, error = await _run(
            resources,
            lambda s: ledger.reserve(
                s,
                org,
                amount,
                key=f"{org}:{k}",
                expires_in=HOUR,
                api_key_id=key_id if with_key else None,
            ),
        )
        if k in m.hold_keys:
            expected = None if m.hold_keys[k] == (amount, with_key) else "conflict"
            assert error == expected, (op, error)
            if result is not None:
                assert result.replayed and result.hold.id == m.by_key[k].id
        elif amount > m.available:
            assert error == "insufficient_credits", (op, error)
        elif with_key and m.key_spent + m.key_reserved + amount > m.budget:
            assert error == "api_key_budget_exhausted", (op, error)
        else:
            assert error is None and not result.replayed, (op, error)
            hold = HoldModel(result.hold.id, amount, with_key)
            m.holds.append(hold)
            m.by_key[k] = hold
            m.hold_keys[k] = (amount, with_key)
            m.available -= amount
            m.key_reserved += amount if with_key else 0

    elif name == "settle" and m.holds:
        hold, actual = m.holds[-1 - y % len(m.holds)], x  # favour the newest
        result, error = await _run(resources, lambda s: ledger.settle(s, hold.id, actual))
        if hold.status == "settled":
            assert error is None and result.replayed and result.charged_micros == hold.charged
        elif hold.status == "voided":
            assert error == "conflict", (op, error)
        else:
            assert error is None and not result.replayed, (op, error)
            held = hold.amount if hold.status == "pending" else 0
            charged = min(actual, held + m.available)
            assert result.charged_micros == charged, (op, result)
            assert result.uncollected_micros == actual - charged
            m.balance -= charged
            m.available += held - charged
            if hold.with_key:
                m.key_reserved -= hold.amount if held else 0
                m.key_spent += charged
            hold.status, hold.charged = "settled", charged
            if charged:
                m.debits.append((result.entry_id, charged, hold.with_key))

    elif name == "void" and m.holds:
        hold = m.holds[-1 - y % len(m.holds)]
        result, error = await _run(resources, lambda s: ledger.void(s, hold.id))
        if hold.status == "settled":
            assert error == "conflict", (op, error)
        elif hold.status == "pending":
            assert error is None and not result.replayed and result.released_micros == hold.amount
            m.available += hold.amount
            m.key_reserved -= hold.amount if hold.with_key else 0
            hold.status = "voided"
        else:
            assert error is None and result.replayed, (op, error)

    elif name == "refund" and m.debits:
        entry_id, amount, with_key = m.debits[y % len(m.debits)]
        k = f"r{x % 3}"
        result, error = await _run(
            resources,
            lambda s: ledger.refund(s, entry_id, key=f"{org}:{k}", actor="p", reason="r"),
        )
        if entry_id in m.refunded:
            expected = None if m.refunded[entry_id] == k else "conflict"
            assert error == expected and (error or result.replayed), (op, error)
        elif k in m.refunded.values():
            assert error == "conflict", (op, error)
        else:
            assert error is None and result.entry.amount_micros == amount, (op, error)
            m.refunded[entry_id] = k
            m.balance += amount
            m.available += amount
            if with_key:
                m.key_spent = max(m.key_spent - amount, 0)

    elif name == "expire":
        limit = y % 3 + 1
        result, error = await _run(
            resources, lambda s: ledger.expire_stale_holds(s, now=FAR_FUTURE, limit=limit)
        )
        assert error is None
        released = 0
        async with resources.sessions() as s:
            for hold in m.holds:
                if hold.status == "pending":
                    stored = await repo.get_hold(s, hold.id)
                    if stored is not None and stored.status == "expired":
                        hold.status = "expired"
                        released += hold.amount
                        m.key_reserved -= hold.amount if hold.with_key else 0
        assert result.released_micros == released
        assert result.expired <= limit
        m.available += released


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    budget=st.integers(0, 150),
    funding=st.integers(0, 150),
    ops=st.lists(OPS, min_size=8, max_size=30),
)
async def test_random_operations_keep_the_books(
    resources: Resources, budget: int, funding: int, ops: list[Op]
) -> None:
    # the sweeper is global: clear holds left pending by earlier examples so each sweep here
    # only meets this example's holds
    async with resources.sessions.begin() as s:
        await ledger.expire_stale_holds(s, now=FAR_FUTURE, limit=100_000)
    org = await make_org(resources.sessions, funded_micros=funding)
    key_id = await make_api_key(resources.sessions, org, budget_micros=budget)
    m = Model(budget=budget, balance=funding, available=funding)
    for op in ops:
        await _step(resources, m, org, key_id, op)
        books = await assert_books_balance(resources.sessions, org)
        assert (books.balance, books.available) == (m.balance, m.available), op
        assert await assert_key_books(resources.sessions, key_id) == (m.key_spent, m.key_reserved)
