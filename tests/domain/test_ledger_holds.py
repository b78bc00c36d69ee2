"""Two-phase holds: reserve, settle, void, expiry, and the api key budget riding along."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from config.runtime import Resources
from domain.errors import Conflict, DomainError, InvalidRequest, NotFound
from domain.ledger import repository as repo
from domain.ledger import service as ledger
from domain.ledger.errors import ApiKeyBudgetExhausted, InsufficientCredits
from tests.domain.factories import CREDIT, backdate_hold, key_budget, make_api_key, make_org, unique
from tests.domain.invariants import assert_books_balance, assert_key_books
from tests.fixtures.ledger import Ledger

HOUR = timedelta(hours=1)


async def _refused(resources: Resources, op: object) -> DomainError:
    """Catch the refusal inside the transaction and commit: nothing may be left behind."""
    async with resources.sessions.begin() as s:
        with pytest.raises(DomainError) as caught:
            await op(s)  # type: ignore[operator]
    return caught.value


async def test_reserve_then_settle_below_the_hold(resources: Resources) -> None:
    org_id = await make_org(resources.sessions, funded_micros=100 * CREDIT)
    book = Ledger(resources.sessions)
    res = await book.reserve(org_id, 30 * CREDIT, key="req:1:hold", expires_in=HOUR)
    assert not res.replayed
    assert res.hold.status == "pending" and res.hold.amount_micros == 30 * CREDIT
    assert res.hold.expires_at > res.hold.created_at
    assert (await book.balance(org_id)).held_micros == 30 * CREDIT

    again = await book.reserve(org_id, 30 * CREDIT, key="req:1:hold", expires_in=HOUR)
    assert again.replayed and again.hold.id == res.hold.id
    assert (await book.balance(org_id)).available_micros == 70 * CREDIT

    done = await book.settle(res.hold.id, 12 * CREDIT)
    assert (done.charged_micros, done.released_micros, done.uncollected_micros) == (
        12 * CREDIT,
        18 * CREDIT,
        0,
    )
    balance = await book.balance(org_id)
    assert (balance.balance_micros, balance.available_micros, balance.held_micros) == (
        88 * CREDIT,
        88 * CREDIT,
        0,
    )
    entry = (await book.list_entries(org_id, kind="debit")).entries[0]
    assert entry.id == done.entry_id
    assert entry.amount_micros == -12 * CREDIT
    assert entry.idempotency_key == f"hold:{res.hold.id}:settle"
    assert entry.hold_id == res.hold.id and entry.balance_after_micros == 88 * CREDIT

    replay = await book.settle(res.hold.id, 99 * CREDIT)
    assert replay.replayed
    assert replay.model_dump(exclude={"replayed"}) == done.model_dump(exclude={"replayed"})
    assert (await book.balance(org_id)).balance_micros == 88 * CREDIT
    await assert_books_balance(resources.sessions, org_id)


async def test_reserve_refusals_leave_nothing_behind(resources: Resources) -> None:
    org_id = await make_org(resources.sessions, funded_micros=5 * CREDIT)
    error = await _refused(
        resources,
        lambda s: ledger.reserve(s, org_id, 6 * CREDIT, key="req:big", expires_in=HOUR),
    )
    assert isinstance(error, InsufficientCredits)
    books = await assert_books_balance(resources.sessions, org_id)
    assert (books.available, books.pending_count) == (5 * CREDIT, 0)

    # the key was not consumed by the refusal: a smaller retry with it may succeed
    ok = await Ledger(resources.sessions).reserve(
        org_id, 5 * CREDIT, key="req:big", expires_in=HOUR
    )
    assert not ok.replayed
    error = await _refused(
        resources,
        lambda s: ledger.reserve(s, org_id, 4 * CREDIT, key="req:big", expires_in=HOUR),
    )
    assert isinstance(error, Conflict)  # same key, different hold
    with pytest.raises(NotFound):
        await Ledger(resources.sessions).reserve(uuid.uuid4(), 0, key=unique("r"), expires_in=HOUR)
    for bad in ({"amount": -1, "exp": HOUR}, {"amount": 1, "exp": timedelta(0)}):
        with pytest.raises(InvalidRequest):
            await Ledger(resources.sessions).reserve(
                org_id,
                bad["amount"],  # type: ignore[arg-type]
                key=unique("r"),
                expires_in=bad["exp"],  # type: ignore[arg-type]
            )
    await assert_books_balance(resources.sessions, org_id)


async def test_api_key_budget_binds_and_undoes_the_org_reservation(resources: Resources) -> None:
    org_id = await make_org(resources.sessions, funded_micros=100 * CREDIT)
    key_id = await make_api_key(resources.sessions, org_id, budget_micros=10 * CREDIT)
    book = Ledger(resources.sessions)
    first = await book.reserve(org_id, 6 * CREDIT, key="a", expires_in=HOUR, api_key_id=key_id)
    assert first.hold.key_budget_micros == 6 * CREDIT
    assert await key_budget(resources.sessions, key_id) == (0, 6 * CREDIT)

    error = await _refused(
        resources,
        lambda s: ledger.reserve(
            s, org_id, 5 * CREDIT, key="b", expires_in=HOUR, api_key_id=key_id
        ),
    )
    assert isinstance(error, ApiKeyBudgetExhausted)
    assert (await book.balance(org_id)).available_micros == 94 * CREDIT  # org part undone
    assert await key_budget(resources.sessions, key_id) == (0, 6 * CREDIT)

    await book.settle(first.hold.id, 4 * CREDIT)
    assert await key_budget(resources.sessions, key_id) == (4 * CREDIT, 0)
    fits = await book.reserve(org_id, 6 * CREDIT, key="b", expires_in=HOUR, api_key_id=key_id)
    assert fits.hold.key_budget_micros == 6 * CREDIT
    await book.void(fits.hold.id)
    assert await key_budget(resources.sessions, key_id) == (4 * CREDIT, 0)

    # a key without a budget is never limited nor written; another org's key is not found
    free_key = await make_api_key(resources.sessions, org_id)
    open_hold = await book.reserve(
        org_id, 50 * CREDIT, key="c", expires_in=HOUR, api_key_id=free_key
    )
    assert open_hold.hold.key_budget_micros == 0
    await book.settle(open_hold.hold.id, 50 * CREDIT)
    assert await key_budget(resources.sessions, free_key) == (0, 0)
    stranger = await make_org(resources.sessions, funded_micros=CREDIT)
    foreign_key = await make_api_key(resources.sessions, stranger)
    error = await _refused(
        resources,
        lambda s: ledger.reserve(
            s, org_id, CREDIT, key="d", expires_in=HOUR, api_key_id=foreign_key
        ),
    )
    assert isinstance(error, NotFound)
    await assert_books_balance(resources.sessions, org_id)
    await assert_key_books(resources.sessions, key_id)


async def test_settle_above_the_hold_takes_what_is_available(resources: Resources) -> None:
    org_id = await make_org(resources.sessions, funded_micros=20 * CREDIT)
    key_id = await make_api_key(resources.sessions, org_id, budget_micros=100 * CREDIT)
    book = Ledger(resources.sessions)
    hold = await book.reserve(org_id, 5 * CREDIT, key="h1", expires_in=HOUR, api_key_id=key_id)
    done = await book.settle(hold.hold.id, 8 * CREDIT)
    assert (done.charged_micros, done.uncollected_micros, done.released_micros) == (
        8 * CREDIT,
        0,
        0,
    )
    assert (await book.balance(org_id)).balance_micros == 12 * CREDIT
    assert await key_budget(resources.sessions, key_id) == (8 * CREDIT, 0)
    await assert_books_balance(resources.sessions, org_id)


async def test_settle_above_the_hold_records_what_it_cannot_collect(
    resources: Resources,
) -> None:
    org_id = await make_org(resources.sessions, funded_micros=10 * CREDIT)
    book = Ledger(resources.sessions)
    big = await book.reserve(org_id, 4 * CREDIT, key="h1", expires_in=HOUR)
    other = await book.reserve(org_id, 5 * CREDIT, key="h2", expires_in=HOUR)  # stays held

    done = await book.settle(big.hold.id, 7 * CREDIT)
    # 4 from the hold, 1 from what is available (another hold's 5 are untouchable), 2 lost
    assert (done.charged_micros, done.uncollected_micros, done.released_micros) == (
        5 * CREDIT,
        2 * CREDIT,
        0,
    )
    balance = await book.balance(org_id)
    assert (balance.balance_micros, balance.available_micros) == (5 * CREDIT, 0)
    async with resources.sessions() as s:
        stored = await repo.get_hold(s, big.hold.id)
    assert stored is not None
    assert (stored.status, stored.settled_micros, stored.uncollected_micros) == (
        "settled",
        5 * CREDIT,
        2 * CREDIT,
    )
    assert (await book.settle(big.hold.id, 7 * CREDIT)).uncollected_micros == 2 * CREDIT
    assert (await book.settle(other.hold.id, 5 * CREDIT)).charged_micros == 5 * CREDIT
    await assert_books_balance(resources.sessions, org_id)
    assert (await book.balance(org_id)).balance_micros == 0


async def test_zero_charge_releases_everything_and_writes_no_entry(resources: Resources) -> None:
    org_id = await make_org(resources.sessions, funded_micros=3 * CREDIT)
    book = Ledger(resources.sessions)
    hold = await book.reserve(org_id, 2 * CREDIT, key="z", expires_in=HOUR)
    done = await book.settle(hold.hold.id, 0)
    assert (done.charged_micros, done.released_micros, done.entry_id) == (0, 2 * CREDIT, None)
    assert [e.kind for e in (await book.list_entries(org_id)).entries] == ["purchase"]
    assert (await book.settle(hold.hold.id, 0)).replayed
    await assert_books_balance(resources.sessions, org_id)


async def test_void_releases_once_and_conflicts_with_settle(resources: Resources) -> None:
    org_id = await make_org(resources.sessions, funded_micros=10 * CREDIT)
    book = Ledger(resources.sessions)
    hold = await book.reserve(org_id, 6 * CREDIT, key="v", expires_in=HOUR)
    released = await book.void(hold.hold.id)
    assert (released.status, released.released_micros, released.replayed) == (
        "voided",
        6 * CREDIT,
        False,
    )
    assert (await book.void(hold.hold.id)).replayed
    assert (await book.balance(org_id)).available_micros == 10 * CREDIT
    with pytest.raises(Conflict):
        await book.settle(hold.hold.id, CREDIT)

    settled = await book.reserve(org_id, CREDIT, key="s", expires_in=HOUR)
    await book.settle(settled.hold.id, CREDIT)
    with pytest.raises(Conflict):
        await book.void(settled.hold.id)
    for op in (book.void(uuid.uuid4()), book.settle(uuid.uuid4(), 0)):
        with pytest.raises(NotFound):
            await op
    with pytest.raises(InvalidRequest):
        await book.settle(settled.hold.id, -1)
    await assert_books_balance(resources.sessions, org_id)


async def test_sweeper_releases_a_crashed_requests_hold(resources: Resources) -> None:
    org_id = await make_org(resources.sessions, funded_micros=10 * CREDIT)
    key_id = await make_api_key(resources.sessions, org_id, budget_micros=10 * CREDIT)
    book = Ledger(resources.sessions)
    crashed = await book.reserve(
        org_id, 7 * CREDIT, key="crash", expires_in=timedelta(minutes=5), api_key_id=key_id
    )
    alive = await book.reserve(org_id, 2 * CREDIT, key="alive", expires_in=HOUR)
    await backdate_hold(resources.sessions, crashed.hold.id, timedelta(minutes=10))

    swept = await book.expire_stale_holds()
    assert (swept.expired, swept.released_micros) == (1, 7 * CREDIT)
    assert (await book.balance(org_id)).available_micros == 8 * CREDIT
    assert await key_budget(resources.sessions, key_id) == (0, 0)
    assert (await book.expire_stale_holds()).expired == 0  # nothing twice
    assert (await book.void(crashed.hold.id)).status == "expired"

    # an explicit `now` sweeps what will be overdue by then; `limit` bounds a batch
    later = datetime.now(UTC) + 2 * HOUR
    assert (await book.expire_stale_holds(now=later, limit=1)).expired == 1
    assert (await book.balance(org_id)).held_micros == 0
    with pytest.raises(InvalidRequest):
        await book.expire_stale_holds(limit=0)
    await assert_books_balance(resources.sessions, org_id)
    await assert_key_books(resources.sessions, key_id)
    assert alive.hold.id != crashed.hold.id


async def test_a_request_that_outlived_its_hold_is_still_billed(resources: Resources) -> None:
    """The sweeper released the hold; the late settle charges available credit instead."""
    org_id = await make_org(resources.sessions, funded_micros=10 * CREDIT)
    key_id = await make_api_key(resources.sessions, org_id, budget_micros=10 * CREDIT)
    book = Ledger(resources.sessions)
    slow = await book.reserve(org_id, 8 * CREDIT, key="slow", expires_in=HOUR, api_key_id=key_id)
    await book.expire_stale_holds(now=datetime.now(UTC) + 2 * HOUR)
    await book.adjust(org_id, -7 * CREDIT, key="adj", actor="ops", reason="correction")

    done = await book.settle(slow.hold.id, 5 * CREDIT)
    assert (done.charged_micros, done.uncollected_micros) == (3 * CREDIT, 2 * CREDIT)
    assert (await book.balance(org_id)).balance_micros == 0
    assert await key_budget(resources.sessions, key_id) == (3 * CREDIT, 0)
    assert (await book.settle(slow.hold.id, 5 * CREDIT)).replayed
    await assert_books_balance(resources.sessions, org_id)
    await assert_key_books(resources.sessions, key_id)
