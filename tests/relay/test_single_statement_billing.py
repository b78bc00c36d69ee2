"""The relay's one-statement reserve and settle do exactly what the ledger's general path
does in the common case, and nothing at all otherwise (so the caller's fallback decides)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from sqlalchemy import text

from config.runtime import Resources
from domain.budgets.models import BudgetRef
from domain.ledger import service as ledger
from domain.ratelimit.service import RateDecision, RateLimited
from domain.relay import repository as relay_repo
from domain.relay.group_commit import GroupCommit
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
    item = relay_repo.SettleItem(hold_id, cost, _log(org_id, hold_id, request_id),
                                 _attempt(request_id))  # fmt: skip
    (done,) = await relay_repo.settle_and_log_many(resources.relay.direct, [item])
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


# --- settles batched into one statement -----------------------------------------------------


def _item(org_id: uuid.UUID, hold_id: uuid.UUID, cost: int) -> relay_repo.SettleItem:
    request_id = unique("req")
    log = {**_log(org_id, hold_id, request_id), "cost_micros": cost, "list_cost_micros": cost}
    return relay_repo.SettleItem(hold_id, cost, log, _attempt(request_id))


async def test_a_batch_settles_like_one_call_after_another(resources: Resources) -> None:
    """Two orgs interleaved, a free call, and two items the batch must leave alone: the
    debits' balances run in order per org, and only settled items are logged."""
    a = await make_org(resources.sessions, funded_micros=100 * CREDIT)
    b = await make_org(resources.sessions, funded_micros=50 * CREDIT)
    holds = {}
    for name, org in (("a1", a), ("b1", b), ("a2", a), ("a3", a), ("b2", b), ("a4", a)):
        holds[name] = await _reserve(resources, org, 10 * CREDIT, unique(name))
    assert all(holds.values())
    spent = {"a1": 3, "b1": 4, "a2": 0, "a3": 5, "b2": 6}  # credits; a4 costs more than held
    items = [_item(a if n[0] == "a" else b, holds[n], c * CREDIT) for n, c in spent.items()]
    items.append(_item(a, holds["a4"], 11 * CREDIT))
    items.append(_item(a, uuid.uuid4(), CREDIT))  # no such hold
    assert await relay_repo.settle_and_log_many(resources.relay.direct, items) == [
        True, True, True, True, True, False, False,
    ]  # fmt: skip

    books_a = await assert_books_balance(resources.sessions, a)
    books_b = await assert_books_balance(resources.sessions, b)
    assert (books_a.balance, books_a.available, books_a.pending_count) == (
        92 * CREDIT, 82 * CREDIT, 1,
    )  # fmt: skip
    assert (books_b.balance, books_b.available, books_b.pending_count) == (
        40 * CREDIT,
        40 * CREDIT,
        0,
    )
    async with resources.sessions() as s:
        rows = (
            await s.execute(
                text("SELECT org_id, amount_micros, balance_after_micros FROM ledger_entries"
                     " WHERE kind = 'debit' AND org_id IN (:a, :b) ORDER BY id"),
                {"a": a, "b": b},
            )
        ).all()  # fmt: skip
    assert [(r[0], r[1] // CREDIT, r[2] // CREDIT) for r in rows] == [
        (a, -3, 97),
        (b, -4, 46),
        (a, -5, 92),
        (b, -6, 40),
    ]  # fmt: skip  (the free call writes no debit)
    for item, done in zip(items, [True] * 5 + [False] * 2, strict=True):
        logged = await _count(
            resources, "SELECT count(*) FROM request_logs WHERE id = :r", r=item.log["id"]
        )
        tried = await _count(
            resources, "SELECT count(*) FROM request_attempts WHERE request_id = :r",
            r=item.log["id"],
        )  # fmt: skip
        assert (logged, tried) == ((1, 1) if done else (0, 0))
    async with resources.sessions() as s:
        snapshot = (
            await s.execute(
                text("SELECT created_at, latency_ms, hold_id FROM request_logs WHERE id = :r"),
                {"r": items[0].log["id"]},
            )
        ).one()
    assert snapshot.latency_ms == 3 and snapshot.hold_id == holds["a1"]
    assert abs((snapshot.created_at - items[0].log["created_at"]).total_seconds()) < 1e-3


async def test_group_commit_batches_concurrent_settles_and_isolates_a_bad_one(
    resources: Resources,
) -> None:
    org_id = await make_org(resources.sessions, funded_micros=1_000 * CREDIT)
    sizes: list[int] = []

    async def run(items: Sequence[relay_repo.SettleItem]) -> list[bool]:
        sizes.append(len(items))
        return await relay_repo.settle_and_log_many(resources.relay.direct, items)

    settles = GroupCommit(run, max_in_flight=2)
    hold_ids = [await _reserve(resources, org_id, 5 * CREDIT, unique("g")) for _ in range(60)]
    items = [_item(org_id, h, 2 * CREDIT) for h in hold_ids if h is not None]
    # One item PostgreSQL refuses (a status longer than its column): only its caller fails.
    bad = items[17]
    items[17] = relay_repo.SettleItem(
        bad.hold_id, bad.cost, {**bad.log, "status": "x" * 500}, bad.attempt
    )
    results = await asyncio.gather(*(settles.submit(i) for i in items), return_exceptions=True)
    assert isinstance(results[17], asyncpg.StringDataRightTruncationError)
    assert [r for i, r in enumerate(results) if i != 17] == [True] * 59
    assert max(sizes) > 1, sizes  # they did go together
    books = await assert_books_balance(resources.sessions, org_id)
    assert (books.balance, books.available, books.pending_count) == (
        (1_000 - 59 * 2) * CREDIT, (1_000 - 59 * 2 - 5) * CREDIT, 1,
    )  # fmt: skip


# --- the rate-limit hit and the reserve in one statement -------------------------------------


async def _hit_and_reserve(
    resources: Resources, key_id: uuid.UUID, limit: int, org_id: uuid.UUID, amount: int, key: str
) -> tuple[RateDecision, uuid.UUID | None] | None:
    return await relay_repo.hit_and_reserve(
        resources.relay.unflushed, key_id, limit, org_id, amount, key=key, reference=key,
        expires_in=HOUR,
    )  # fmt: skip


async def _window(resources: Resources, key_id: uuid.UUID) -> int:
    return await _count(
        resources,
        "SELECT coalesce(sum(count), 0) FROM rate_limit_windows WHERE api_key_id = :k",
        k=key_id,
    )


async def test_hit_and_reserve_counts_then_reserves_and_refuses_whole(
    resources: Resources,
) -> None:
    org_id = await make_org(resources.sessions, funded_micros=10 * CREDIT)
    key_id = await make_api_key(resources.sessions, org_id)

    first = await _hit_and_reserve(resources, key_id, 3, org_id, 4 * CREDIT, unique("r"))
    assert first is not None and first[1] is not None
    assert (first[0].limit, first[0].remaining) == (3, 2)
    # Counted, but not enough credit: the general path decides (and answers 402).
    second = await _hit_and_reserve(resources, key_id, 3, org_id, 7 * CREDIT, unique("r"))
    assert second is not None and second[1] is None and second[0].remaining == 1
    # A taken idempotency key writes nothing at all, not even the hit.
    taken = unique("r")
    assert await _hit_and_reserve(resources, key_id, 3, org_id, CREDIT, taken) is not None
    assert await _window(resources, key_id) == 3
    before = await assert_books_balance(resources.sessions, org_id)
    assert await _hit_and_reserve(resources, key_id, 4, org_id, CREDIT, taken) is None
    assert await _window(resources, key_id) == 3
    # A full window: 429 with its headers, and nothing reserved.
    with pytest.raises(RateLimited) as refused:
        await _hit_and_reserve(resources, key_id, 3, org_id, CREDIT, unique("r"))
    assert refused.value.headers["X-RateLimit-Remaining"] == "0"
    after = await assert_books_balance(resources.sessions, org_id)
    assert (after.available, after.pending_count) == (before.available, before.pending_count)
    assert (after.available, after.pending_count) == (5 * CREDIT, 2)
    assert await _window(resources, key_id) == 3


async def test_a_batch_of_several_log_shapes_applies_whole_or_not_at_all(
    resources: Resources,
) -> None:
    org_id = await make_org(resources.sessions, funded_micros=100 * CREDIT)
    first = await _reserve(resources, org_id, 5 * CREDIT, unique("s"))
    second = await _reserve(resources, org_id, 5 * CREDIT, unique("s"))
    assert first is not None and second is not None
    plain = _item(org_id, first, 2 * CREDIT)
    other = _item(org_id, second, 3 * CREDIT)  # more log columns: a statement of its own
    other = relay_repo.SettleItem(
        other.hold_id, other.cost, {**other.log, "error_code": "x" * 500}, other.attempt
    )
    with pytest.raises(asyncpg.StringDataRightTruncationError):
        await relay_repo.settle_and_log_many(resources.relay.direct, [plain, other])
    books = await assert_books_balance(resources.sessions, org_id)
    assert (books.balance, books.pending_count) == (100 * CREDIT, 2)  # the first rolled back
    fixed = relay_repo.SettleItem(
        other.hold_id, other.cost, {**other.log, "error_code": "partial"}, other.attempt
    )
    assert await relay_repo.settle_and_log_many(resources.relay.direct, [plain, fixed]) == [
        True,
        True,
    ]
    books = await assert_books_balance(resources.sessions, org_id)
    assert (books.balance, books.available, books.pending_count) == (95 * CREDIT, 95 * CREDIT, 0)


async def test_the_batch_writes_json_null_as_the_general_path_does(resources: Resources) -> None:
    """None in a JSON column is JSON null on both paths, so queries see one shape."""
    org_id = await make_org(resources.sessions, funded_micros=10 * CREDIT)
    hold_id = await _reserve(resources, org_id, CREDIT, unique("j"))
    assert hold_id is not None
    item = _item(org_id, hold_id, CREDIT)
    item = relay_repo.SettleItem(
        hold_id, CREDIT, {**item.log, "price_snapshot": None}, {**item.attempt, "diagnostics": None}
    )
    assert await relay_repo.settle_and_log_many(resources.relay.direct, [item]) == [True]
    log_id = item.log["id"]
    assert await _count(
        resources,
        "SELECT count(*) FROM request_logs WHERE id = :r AND jsonb_typeof(price_snapshot) = 'null'",
        r=log_id,
    ) == 1  # fmt: skip
    assert await _count(
        resources,
        "SELECT count(*) FROM request_attempts"
        " WHERE request_id = :r AND jsonb_typeof(diagnostics) = 'null'",
        r=log_id,
    ) == 1  # fmt: skip
