"""Budget policies ride on the ledger's holds: hard ones reserve and refuse, soft ones count
and alert, and every path (settle, void, expiry, late settle, refund, replay) leaves the
counters equal to what the holds say."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import date, timedelta

import pytest
from sqlalchemy import insert, select, text, update

from config.runtime import Resources
from domain.budgets.models import BudgetRef, period_of
from domain.errors import DomainError
from domain.ledger.errors import ApiKeyBudgetExhausted, CreditRefusal, InsufficientCredits
from schema.base import table_of
from schema.db import SessionFactory
from schema.org_structure import BudgetAlert, BudgetPolicy, BudgetUsage
from tests.domain.factories import CREDIT, HOLDS, make_api_key, make_org, unique
from tests.domain.invariants import assert_books_balance
from tests.fixtures.ledger import Ledger

POLICIES = table_of(BudgetPolicy)
USAGE = table_of(BudgetUsage)
ALERTS = table_of(BudgetAlert)
HOUR = timedelta(hours=1)
POOL = 40


async def _policy(
    sessions: SessionFactory,
    org_id: uuid.UUID,
    *,
    limit: int,
    mode: str = "hard",
    thresholds: list[int] | None = None,
) -> BudgetRef:
    policy_id = uuid.uuid4()
    async with sessions.begin() as s:
        await s.execute(
            insert(POLICIES).values(
                id=policy_id,
                org_id=org_id,
                name="p",
                scope="department",
                scope_id=uuid.uuid4(),
                limit_micros=limit,
                mode=mode,
                alert_thresholds=thresholds or [],
            )
        )
    return BudgetRef(policy_id, mode == "hard")


async def _counter(
    sessions: SessionFactory, policy: BudgetRef, period: date | None = None
) -> tuple[int, int]:
    """(spent, reserved) this month, after checking reserved = Σ pending holds' claims."""
    period = period or period_of()
    async with sessions() as s:
        row = (
            await s.execute(
                select(USAGE.c.spent_micros, USAGE.c.reserved_micros).where(
                    USAGE.c.policy_id == policy.policy_id, USAGE.c.period == period
                )
            )
        ).first()
        pending = (
            await s.execute(
                text(
                    "SELECT coalesce(sum((c->>'micros')::bigint), 0) FROM holds h,"
                    " jsonb_array_elements(h.budget_reservations) c"
                    " WHERE h.status = 'pending' AND c->>'policy_id' = :p AND c->>'period' = :m"
                ),
                {"p": str(policy.policy_id), "m": period.isoformat()},
            )
        ).scalar_one()
    spent, reserved = (int(row[0]), int(row[1])) if row else (0, 0)
    assert reserved == pending, (reserved, pending)
    return spent, reserved


async def _alerts(sessions: SessionFactory, policy: BudgetRef) -> list[int]:
    async with sessions() as s:
        rows = await s.execute(
            select(ALERTS.c.threshold_pct)
            .where(ALERTS.c.policy_id == policy.policy_id)
            .order_by(ALERTS.c.threshold_pct)
        )
        return [int(r[0]) for r in rows]


async def test_hard_budget_under_500_concurrent_requests(resources: Resources) -> None:
    org_id = await make_org(resources.sessions, funded_micros=10_000 * CREDIT)
    hard = await _policy(resources.sessions, org_id, limit=500 * CREDIT)
    soft = await _policy(resources.sessions, org_id, limit=10_000 * CREDIT, mode="soft")
    book = Ledger(resources.sessions)
    gate = asyncio.Semaphore(POOL)

    async def one(i: int) -> str:
        async with gate:
            try:
                res = await book.reserve(
                    org_id, 7 * CREDIT, key=f"b:{org_id}:{i}", expires_in=HOUR,
                    budgets=[soft, hard],
                )  # fmt: skip
            except DomainError as exc:
                return exc.code
            await asyncio.sleep(0)
            await book.settle(res.hold.id, 7 * CREDIT)
            return "ok"

    outcome = Counter(await asyncio.gather(*(one(i) for i in range(500))))
    assert outcome == Counter({"ok": 71, "api_key_budget_exhausted": 429})
    assert await _counter(resources.sessions, hard) == (497 * CREDIT, 0)
    # The soft policy counted exactly the same spend and refused nothing.
    assert await _counter(resources.sessions, soft) == (497 * CREDIT, 0)
    books = await assert_books_balance(resources.sessions, org_id)
    assert (books.balance, books.pending_count) == (9_503 * CREDIT, 0)


async def test_soft_budget_alerts_once_per_threshold_even_concurrently(
    resources: Resources,
) -> None:
    org_id = await make_org(resources.sessions, funded_micros=1_000 * CREDIT)
    soft = await _policy(
        resources.sessions, org_id, limit=100 * CREDIT, mode="soft", thresholds=[50, 80, 100]
    )
    book = Ledger(resources.sessions)

    async def one(i: int) -> None:
        res = await book.reserve(
            org_id, 15 * CREDIT, key=f"s:{org_id}:{i}", expires_in=HOUR, budgets=[soft]
        )
        await book.settle(res.hold.id, 10 * CREDIT)

    await asyncio.gather(*(one(i) for i in range(4)))  # 40% spent: no alert yet
    assert await _alerts(resources.sessions, soft) == []
    await asyncio.gather(*(one(i) for i in range(4, 20)))  # 200%: soft never refuses
    assert await _counter(resources.sessions, soft) == (200 * CREDIT, 0)
    assert await _alerts(resources.sessions, soft) == [50, 80, 100]
    async with resources.sessions() as s:
        at = dict((await s.execute(select(ALERTS.c.threshold_pct, ALERTS.c.spent_micros))).all())
    # Each alert records the spend of the charge that crossed it.
    assert at == {50: 50 * CREDIT, 80: 80 * CREDIT, 100: 100 * CREDIT}


async def test_void_expiry_late_settle_and_refund_keep_the_counter_true(
    resources: Resources,
) -> None:
    org_id = await make_org(resources.sessions, funded_micros=1_000 * CREDIT)
    hard = await _policy(resources.sessions, org_id, limit=100 * CREDIT)
    book = Ledger(resources.sessions)

    voided = await book.reserve(
        org_id, 30 * CREDIT, key=unique("v"), expires_in=HOUR, budgets=[hard]
    )
    assert await _counter(resources.sessions, hard) == (0, 30 * CREDIT)
    await book.void(voided.hold.id)
    assert await _counter(resources.sessions, hard) == (0, 0)

    # A crashed request: the sweeper expires its hold and releases the reservation.
    stale = await book.reserve(
        org_id, 40 * CREDIT, key=unique("x"), expires_in=HOUR, budgets=[hard]
    )
    async with resources.sessions.begin() as s:
        await s.execute(
            update(HOLDS).where(HOLDS.c.id == stale.hold.id).values(expires_at=text("now()"))
        )
    assert (await book.expire_stale_holds()).expired == 1
    assert await _counter(resources.sessions, hard) == (0, 0)
    # It finishes after all: the spend counts, with nothing left to release.
    await book.settle(stale.hold.id, 25 * CREDIT)
    assert await _counter(resources.sessions, hard) == (25 * CREDIT, 0)

    settled = await book.reserve(
        org_id, 50 * CREDIT, key=unique("s"), expires_in=HOUR, budgets=[hard]
    )
    done = await book.settle(settled.hold.id, 45 * CREDIT)
    assert await _counter(resources.sessions, hard) == (70 * CREDIT, 0)
    assert done.entry_id is not None
    await book.refund(done.entry_id, key=unique("r"), actor="test", reason="bad answer")
    assert await _counter(resources.sessions, hard) == (25 * CREDIT, 0)
    await assert_books_balance(resources.sessions, org_id)


async def test_refusal_and_replay_leave_nothing_behind(resources: Resources) -> None:
    org_id = await make_org(resources.sessions, funded_micros=1_000 * CREDIT)
    hard = await _policy(resources.sessions, org_id, limit=100 * CREDIT)
    book = Ledger(resources.sessions)
    key = unique("r")
    first = await book.reserve(org_id, 60 * CREDIT, key=key, expires_in=HOUR, budgets=[hard])
    again = await book.reserve(org_id, 60 * CREDIT, key=key, expires_in=HOUR, budgets=[hard])
    assert again.replayed and again.hold.id == first.hold.id
    assert await _counter(resources.sessions, hard) == (0, 60 * CREDIT)
    with pytest.raises(ApiKeyBudgetExhausted):
        await book.reserve(org_id, 41 * CREDIT, key=unique("r"), expires_in=HOUR, budgets=[hard])
    # A refusal moved nothing: not the account, not the counter.
    books = await assert_books_balance(resources.sessions, org_id)
    assert books.available == 940 * CREDIT
    assert await _counter(resources.sessions, hard) == (0, 60 * CREDIT)
    # More than the whole limit is refused even in a month with no counter yet.
    with pytest.raises(ApiKeyBudgetExhausted):
        await book.reserve(
            org_id, 101 * CREDIT, key=unique("r"), expires_in=HOUR, budgets=[hard],
            period=date(2030, 1, 1),
        )  # fmt: skip
    await book.settle(first.hold.id, 60 * CREDIT)
    assert await _counter(resources.sessions, hard) == (60 * CREDIT, 0)


async def test_months_are_separate_and_deleted_policies_are_skipped(
    resources: Resources,
) -> None:
    org_id = await make_org(resources.sessions, funded_micros=1_000 * CREDIT)
    hard = await _policy(resources.sessions, org_id, limit=100 * CREDIT)
    book = Ledger(resources.sessions)
    last_month = date(2026, 1, 1)
    old = await book.reserve(
        org_id, 90 * CREDIT, key=unique("m"), expires_in=HOUR, budgets=[hard], period=last_month
    )
    # A new month starts at zero, and the old hold settles into its own month.
    now = await book.reserve(org_id, 90 * CREDIT, key=unique("m"), expires_in=HOUR, budgets=[hard])
    await book.settle(old.hold.id, 80 * CREDIT)
    await book.settle(now.hold.id, 10 * CREDIT)
    assert await _counter(resources.sessions, hard, last_month) == (80 * CREDIT, 0)
    assert await _counter(resources.sessions, hard) == (10 * CREDIT, 0)

    # A policy deleted after the relay resolved it no longer limits anything.
    async with resources.sessions.begin() as s:
        await s.execute(POLICIES.delete().where(POLICIES.c.id == hard.policy_id))
    gone = await book.reserve(
        org_id, 500 * CREDIT, key=unique("g"), expires_in=HOUR, budgets=[hard]
    )
    assert gone.hold.budget_reservations in (None, [])
    await book.settle(gone.hold.id, 500 * CREDIT)
    # And a hold that counted against it settles normally after it is gone.
    await assert_books_balance(resources.sessions, org_id)


async def test_refusals_name_what_was_needed_and_what_was_left(resources: Resources) -> None:
    """Every 402 carries the amounts as exact decimal credits: the org's available credit,
    the key budget's remainder or the tightest hard policy's room, whichever refused."""
    org_id = await make_org(resources.sessions, funded_micros=5 * CREDIT)
    hour = timedelta(hours=1)
    book = Ledger(resources.sessions)

    async def refused(amount: int, **kw: object) -> CreditRefusal:
        with pytest.raises(CreditRefusal) as caught:
            await book.reserve(org_id, amount, key=f"r{uuid.uuid4()}", expires_in=hour, **kw)  # type: ignore[arg-type]
        return caught.value

    poor = await refused(5 * CREDIT + 1)
    assert isinstance(poor, InsufficientCredits)
    assert poor.extra["required_credits"] == "5.000001"
    assert poor.extra["available_credits"] == "5"
    assert "5.000001" in poor.message and "5 are available" in poor.message

    key_id = await make_api_key(resources.sessions, org_id, budget_micros=CREDIT // 4)
    over_key = await refused(CREDIT, api_key_id=key_id)
    assert isinstance(over_key, ApiKeyBudgetExhausted)
    assert (over_key.extra["required_credits"], over_key.extra["available_credits"]) == (
        "1", "0.25",
    )  # fmt: skip

    hard = await _policy(resources.sessions, org_id, limit=3 * CREDIT)
    await book.reserve(org_id, 2 * CREDIT, key="taken", expires_in=hour, budgets=[hard])
    over_policy = await refused(2 * CREDIT, budgets=[hard])
    assert isinstance(over_policy, ApiKeyBudgetExhausted)
    assert over_policy.extra["available_credits"] == "1"
    await assert_books_balance(resources.sessions, org_id)
