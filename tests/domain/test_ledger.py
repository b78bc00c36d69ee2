"""Ledger operations against the real PostgreSQL: credits, adjustments, refunds, queries."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, insert, select

from config.runtime import Resources
from domain.errors import Conflict, DomainError, InvalidRequest, NotFound
from domain.ledger import service as ledger
from domain.ledger.errors import InsufficientCredits
from tests.domain.factories import (
    CREDIT,
    ENTRIES,
    ORGS,
    key_budget,
    make_api_key,
    make_org,
    unique,
)
from tests.domain.invariants import assert_books_balance, assert_key_books
from tests.fixtures.ledger import Ledger

HOUR = timedelta(hours=1)


async def _count_entries(resources: Resources, org_id: uuid.UUID) -> int:
    async with resources.sessions() as s:
        total = await s.scalar(select(func.count()).where(ENTRIES.c.org_id == org_id))
    return int(total or 0)


async def _commit_despite(resources: Resources, op: object) -> DomainError:
    """Run `op(session)`, catch its domain error and commit anyway: the ledger must have
    left nothing behind for the commit to make permanent."""
    async with resources.sessions.begin() as s:
        with pytest.raises(DomainError) as caught:
            await op(s)  # type: ignore[operator]
    return caught.value


async def test_ensure_account_is_idempotent_and_needs_an_org(resources: Resources) -> None:
    org_id = await make_org(resources.sessions)
    book = Ledger(resources.sessions)
    first = await book.ensure_account(org_id)
    again = await book.ensure_account(org_id)
    assert first == again
    assert (first.balance_micros, first.available_micros, first.held_micros) == (0, 0, 0)
    with pytest.raises(NotFound):
        await book.ensure_account(uuid.uuid4())


async def test_credit_posts_once_per_key(resources: Resources) -> None:
    org_id = await make_org(resources.sessions)
    book = Ledger(resources.sessions)
    first = await book.credit(
        org_id, 25 * CREDIT, kind="purchase", key="stripe:cs_1", actor="stripe"
    )
    assert not first.replayed
    assert first.entry.amount_micros == 25 * CREDIT
    assert first.entry.balance_after_micros == 25 * CREDIT

    again = await book.credit(
        org_id, 25 * CREDIT, kind="purchase", key="stripe:cs_1", actor="stripe"
    )
    assert again.replayed and again.entry == first.entry
    assert (await book.balance(org_id)).balance_micros == 25 * CREDIT

    # the same key for a different amount is a caller bug: refused, and nothing moves
    error = await _commit_despite(
        resources,
        lambda s: ledger.credit(
            s, org_id, 99 * CREDIT, kind="purchase", key="stripe:cs_1", actor="stripe"
        ),
    )
    assert isinstance(error, Conflict)
    assert (await book.balance(org_id)).balance_micros == 25 * CREDIT
    assert await _count_entries(resources, org_id) == 1
    await assert_books_balance(resources.sessions, org_id)


async def test_a_key_belongs_to_one_org(resources: Resources) -> None:
    org_a = await make_org(resources.sessions)
    org_b = await make_org(resources.sessions)
    book = Ledger(resources.sessions)
    await book.credit(org_a, CREDIT, kind="allocation", key="alloc:x", actor="system")
    with pytest.raises(Conflict):
        await book.credit(org_b, CREDIT, kind="allocation", key="alloc:x", actor="system")
    assert (await book.balance(org_b)).balance_micros == 0


@pytest.mark.parametrize(
    ("kind", "amount", "reason"),
    [
        ("bonus", CREDIT, None),
        ("bonus", CREDIT, "   "),
        ("adjustment", CREDIT, ""),
        ("debit", CREDIT, "x"),
        ("refund", CREDIT, "x"),
        ("purchase", 0, None),
        ("purchase", -CREDIT, None),
    ],
)
async def test_credit_validates_before_moving_money(
    resources: Resources, kind: str, amount: int, reason: str | None
) -> None:
    org_id = await make_org(resources.sessions)
    with pytest.raises(InvalidRequest):
        await Ledger(resources.sessions).credit(
            org_id, amount, kind=kind, key=unique("k"), actor="ops@example.com", reason=reason
        )
    assert await _count_entries(resources, org_id) == 0


async def test_credit_needs_an_account_and_an_actor(resources: Resources) -> None:
    book = Ledger(resources.sessions)
    with pytest.raises(NotFound):
        await book.credit(uuid.uuid4(), CREDIT, kind="purchase", key=unique("k"), actor="t")
    org_id = await make_org(resources.sessions)
    with pytest.raises(InvalidRequest):
        await book.credit(org_id, CREDIT, kind="purchase", key=unique("k"), actor=" ")
    with pytest.raises(InvalidRequest):
        await book.credit(org_id, CREDIT, kind="purchase", key="", actor="t")
    with pytest.raises(InvalidRequest):  # settle entries own the `hold:` key space
        await book.credit(org_id, CREDIT, kind="purchase", key="hold:x:settle", actor="t")
    with pytest.raises(InvalidRequest):
        await book.credit(
            org_id, CREDIT, kind="purchase", key=unique("k"), actor="t", reference="r" * 121
        )


async def test_negative_adjustment_may_not_take_held_credit(resources: Resources) -> None:
    org_id = await make_org(resources.sessions, funded_micros=10 * CREDIT)
    book = Ledger(resources.sessions)
    await book.reserve(org_id, 8 * CREDIT, key=unique("req"), expires_in=HOUR)

    # balance is 10, but only 2 are available: taking 5 would spend someone's hold
    error = await _commit_despite(
        resources,
        lambda s: ledger.adjust(
            s, org_id, -5 * CREDIT, key="adj:1", actor="ops@example.com", reason="chargeback"
        ),
    )
    assert isinstance(error, InsufficientCredits)
    books = await assert_books_balance(resources.sessions, org_id)
    assert (books.balance, books.available) == (10 * CREDIT, 2 * CREDIT)

    taken = await book.adjust(
        org_id, -2 * CREDIT, key="adj:1", actor="ops@example.com", reason="chargeback"
    )
    assert taken.entry.kind == "adjustment"
    assert taken.entry.balance_after_micros == 8 * CREDIT
    assert taken.entry.reason == "chargeback"
    assert (await book.balance(org_id)).available_micros == 0
    await assert_books_balance(resources.sessions, org_id)


async def test_adjustment_rules(resources: Resources) -> None:
    org_id = await make_org(resources.sessions)
    book = Ledger(resources.sessions)
    with pytest.raises(InvalidRequest):
        await book.adjust(org_id, 0, key=unique("adj"), actor="ops", reason="zero")
    with pytest.raises(InvalidRequest):
        await book.adjust(org_id, CREDIT, key=unique("adj"), actor="ops", reason="")
    given = await book.adjust(org_id, 3 * CREDIT, key="adj:2", actor="ops", reason="goodwill")
    replay = await book.adjust(org_id, 3 * CREDIT, key="adj:2", actor="ops", reason="goodwill")
    assert replay.replayed and replay.entry.id == given.entry.id
    assert (await book.balance(org_id)).balance_micros == 3 * CREDIT


async def test_refund_once_and_only_once(resources: Resources) -> None:
    org_id = await make_org(resources.sessions, funded_micros=100 * CREDIT)
    key_id = await make_api_key(resources.sessions, org_id, budget_micros=50 * CREDIT)
    book = Ledger(resources.sessions)
    hold = await book.reserve(
        org_id, 10 * CREDIT, key=unique("req"), expires_in=HOUR, api_key_id=key_id
    )
    settled = await book.settle(hold.hold.id, 7 * CREDIT)
    assert settled.entry_id is not None
    assert await key_budget(resources.sessions, key_id) == (7 * CREDIT, 0)

    refunded = await book.refund(
        settled.entry_id, key="refund:1", actor="ops@example.com", reason="bad output"
    )
    assert not refunded.replayed
    assert refunded.entry.kind == "refund"
    assert refunded.entry.amount_micros == 7 * CREDIT
    assert refunded.entry.refunds_entry_id == settled.entry_id
    assert refunded.entry.api_key_id == key_id
    assert refunded.entry.balance_after_micros == 100 * CREDIT
    assert await key_budget(resources.sessions, key_id) == (0, 0)

    again = await book.refund(
        settled.entry_id, key="refund:1", actor="ops@example.com", reason="bad output"
    )
    assert again.replayed and again.entry == refunded.entry
    error = await _commit_despite(
        resources,
        lambda s: ledger.refund(
            s, settled.entry_id, key="refund:2", actor="ops@example.com", reason="again"
        ),
    )
    assert isinstance(error, Conflict)
    assert (await book.balance(org_id)).balance_micros == 100 * CREDIT
    await assert_books_balance(resources.sessions, org_id)
    await assert_key_books(resources.sessions, key_id)


async def test_refund_rules(resources: Resources) -> None:
    org_id = await make_org(resources.sessions, funded_micros=10 * CREDIT)
    other = await make_org(resources.sessions, funded_micros=10 * CREDIT)
    book = Ledger(resources.sessions)
    purchase = (await book.list_entries(org_id)).entries[0]
    with pytest.raises(InvalidRequest):  # only debits are refunded; purchases are reversed
        await book.refund(purchase.id, key=unique("r"), actor="ops", reason="no")
    hold = await book.reserve(org_id, CREDIT, key=unique("req"), expires_in=HOUR)
    debit_id = (await book.settle(hold.hold.id, CREDIT)).entry_id
    assert debit_id is not None
    with pytest.raises(InvalidRequest):
        await book.refund(debit_id, key=unique("r"), actor="ops", reason=" ")
    with pytest.raises(NotFound):  # another tenant's entry is invisible, not forbidden
        await book.refund(debit_id, key=unique("r"), actor="ops", reason="x", org_id=other)
    with pytest.raises(NotFound):
        await book.refund(10**9, key=unique("r"), actor="ops", reason="x")
    # a key already spent on another operation cannot be reused for a refund
    await book.credit(org_id, CREDIT, kind="bonus", key="taken", actor="ops", reason="x")
    error = await _commit_despite(
        resources,
        lambda s: ledger.refund(s, debit_id, key="taken", actor="ops", reason="x"),
    )
    assert isinstance(error, Conflict)
    await assert_books_balance(resources.sessions, org_id)
    assert (await book.balance(org_id)).balance_micros == 10 * CREDIT


async def test_list_entries_pages_newest_first_within_one_org(resources: Resources) -> None:
    org_id = await make_org(resources.sessions)
    other = await make_org(resources.sessions, funded_micros=CREDIT)
    book = Ledger(resources.sessions)
    for i in range(7):
        kind = "bonus" if i % 2 else "purchase"
        await book.credit(org_id, (i + 1) * CREDIT, kind=kind, key=f"e{i}", actor="t", reason="r")

    seen: list[int] = []
    cursor: str | None = None
    while True:
        page = await book.list_entries(org_id, cursor=cursor, limit=3)
        seen.extend(e.id for e in page.entries)
        assert all(e.org_id == org_id for e in page.entries)
        cursor = page.next_cursor
        if cursor is None:
            break
        # an entry posted while paging lands on page one, never inside later pages
        await book.credit(org_id, CREDIT, kind="purchase", key=unique("late"), actor="t")
    assert len(seen) == 7 and seen == sorted(seen, reverse=True)

    bonuses = await book.list_entries(org_id, kind="bonus", limit=50)
    assert [e.amount_micros for e in bonuses.entries] == [6 * CREDIT, 4 * CREDIT, 2 * CREDIT]
    assert (await book.list_entries(other)).entries[0].org_id == other

    async with resources.sessions() as s:
        now = await s.scalar(select(func.now()))
    assert now is not None
    assert (await book.list_entries(org_id, since=now + HOUR)).entries == []
    assert len((await book.list_entries(org_id, until=now + HOUR, limit=200)).entries) == 9
    for bad in ({"limit": 0}, {"limit": 201}, {"kind": "gift"}, {"cursor": "abc"}):
        with pytest.raises(InvalidRequest):
            await book.list_entries(org_id, **bad)


async def test_operations_join_the_callers_transaction(resources: Resources) -> None:
    """The relay settles and writes its log in one transaction: a rollback undoes both."""
    org_id = await make_org(resources.sessions, funded_micros=10 * CREDIT)
    hold = await Ledger(resources.sessions).reserve(
        org_id, 5 * CREDIT, key=unique("req"), expires_in=HOUR
    )

    class LogWriteFailed(Exception):
        pass

    with pytest.raises(LogWriteFailed):
        async with resources.sessions.begin() as s:
            await ledger.settle(s, hold.hold.id, 4 * CREDIT)
            await s.execute(insert(ORGS).values(id=uuid.uuid4(), name="same-tx write"))
            raise LogWriteFailed
    books = await assert_books_balance(resources.sessions, org_id)
    assert (books.balance, books.available, books.pending_count) == (10 * CREDIT, 5 * CREDIT, 1)
    assert (await Ledger(resources.sessions).settle(hold.hold.id, 4 * CREDIT)).charged_micros == (
        4 * CREDIT
    )
