"""Every SQL statement the ledger runs. Nothing here commits: callers own the transaction.

Lock order, everywhere: hold or entry row, then credit account, then api key, then budget
counters (`domain.budgets.repository`). Reserve takes the account first and inserts its
hold last (a new row nobody else can lock yet); the sweeper takes its batch of holds, then
accounts, keys and counters in sorted order. Keeping one order means two transactions can
wait on each other but never deadlock.

Each mutating statement is either guarded (`WHERE available_micros >= :x`,
`WHERE status = 'pending'`) or an idempotent claim (`ON CONFLICT DO NOTHING`), so the
database, not a read-then-write in Python, decides what wins under concurrency.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Date,
    Interval,
    RowMapping,
    bindparam,
    exists,
    func,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, UUID, insert

from domain.budgets.models import BudgetClaim
from domain.inputs import INT64_MAX
from domain.ledger.models import Entry, HoldState
from schema.base import table_of
from schema.db import Executor
from schema.identity import Org
from schema.keys import ApiKey
from schema.ledger import CreditAccount, Hold, LedgerEntry

accounts = table_of(CreditAccount)
entries = table_of(LedgerEntry)
holds = table_of(Hold)
api_keys = table_of(ApiKey)
orgs = table_of(Org)

_ENTRY_COLUMNS = [entries.c[name] for name in Entry.model_fields]
_HOLD_COLUMNS = [holds.c[name] for name in HoldState.model_fields]


# The hot statements (every relay call runs reserve and settle) are built once here with
# bind parameters: building a Core statement costs more CPU than running it, and a reused
# statement object also keeps its cache key, so SQLAlchemy only looks up the compiled SQL.
# Bind names carry a `b_` prefix: SQLAlchemy reserves bare column names for VALUES/SET.


def _micros(name: str) -> Any:
    return bindparam(name, type_=BigInteger)


_ORG = bindparam("b_org", type_=accounts.c.org_id.type)
_BALANCE_DELTA = _micros("b_balance_delta")
_AVAILABLE_DELTA = _micros("b_available_delta")

_GET_ACCOUNT = select(accounts.c.balance_micros, accounts.c.available_micros).where(
    accounts.c.org_id == _ORG
)
_GET_ACCOUNT_LOCKED = _GET_ACCOUNT.with_for_update()

_MOVE_ACCOUNT = (
    update(accounts)
    .where(accounts.c.org_id == _ORG)
    .values(
        balance_micros=accounts.c.balance_micros + _BALANCE_DELTA,
        available_micros=accounts.c.available_micros + _AVAILABLE_DELTA,
        version=accounts.c.version + 1,
        updated_at=func.now(),
    )
    .returning(accounts.c.balance_micros, accounts.c.available_micros)
)
# The conditional reserve: only if available stays >= 0, decided by the row lock's winner.
_MOVE_ACCOUNT_GUARDED = _MOVE_ACCOUNT.where(accounts.c.available_micros + _AVAILABLE_DELTA >= 0)
# A credit only if the balance stays within BIGINT (available <= balance, so it does too):
# unguarded, the sum fails the statement as "bigint out of range".
_MOVE_ACCOUNT_CAPPED = _MOVE_ACCOUNT.where(
    accounts.c.balance_micros <= literal(INT64_MAX, BigInteger) - _BALANCE_DELTA
)

# Executed with a params dict: the compiled INSERT (one per set of keys) is cached.
_INSERT_ENTRY = (
    insert(entries)
    .on_conflict_do_nothing(index_elements=[entries.c.idempotency_key])
    .returning(*_ENTRY_COLUMNS)
)
_ENTRY_BY_KEY = select(*_ENTRY_COLUMNS).where(
    entries.c.idempotency_key == bindparam("b_key", type_=entries.c.idempotency_key.type)
)

_INSERT_HOLD = (
    insert(holds)
    .values(
        id=bindparam("b_id", type_=holds.c.id.type),
        org_id=_ORG,
        api_key_id=bindparam("b_api_key_id", type_=holds.c.api_key_id.type),
        amount_micros=_micros("b_amount"),
        key_budget_micros=_micros("b_key_budget"),
        idempotency_key=bindparam("b_key", type_=holds.c.idempotency_key.type),
        reference=bindparam("b_reference", type_=holds.c.reference.type),
        expires_at=func.now() + bindparam("b_expires_in", type_=Interval()),
        budget_reservations=bindparam("b_budgets", type_=holds.c.budget_reservations.type),
    )
    .on_conflict_do_nothing(index_elements=[holds.c.idempotency_key])
    .returning(*_HOLD_COLUMNS)
)
_INSERT_LOST_HOLD = (
    insert(holds)
    .values(
        id=bindparam("b_id", type_=holds.c.id.type),
        org_id=_ORG,
        amount_micros=_micros("b_amount"),
        status="expired",
        idempotency_key=bindparam("b_key", type_=holds.c.idempotency_key.type),
        reference=bindparam("b_reference", type_=holds.c.reference.type),
        expires_at=func.now(),
        resolved_at=func.now(),
    )
    .on_conflict_do_nothing()
    .returning(holds.c.id)
)
_HOLD_BY_KEY = select(*_HOLD_COLUMNS).where(
    holds.c.idempotency_key == bindparam("b_key", type_=holds.c.idempotency_key.type)
)
_HOLD_ID = bindparam("b_hold", type_=holds.c.id.type)
_STATUS = holds.c.status.type
_GET_HOLD = select(*_HOLD_COLUMNS).where(holds.c.id == _HOLD_ID)
_GET_HOLD_LOCKED = _GET_HOLD.with_for_update()

# Exactly once: only the statement that finds the hold in `from_status` moves it.
_CLAIM_HOLD = (
    update(holds)
    .where(holds.c.id == _HOLD_ID, holds.c.status == bindparam("b_from", type_=_STATUS))
    .values(status=bindparam("b_to", type_=_STATUS), resolved_at=func.now())
    .returning(*_HOLD_COLUMNS)
)
_CLAIM_HOLD_SETTLING = _CLAIM_HOLD.values(
    settled_micros=func.least(_micros("b_settle_up_to"), holds.c.amount_micros)
)

_RECORD_SETTLEMENT = (
    update(holds)
    .where(holds.c.id == _HOLD_ID)
    .values(settled_micros=_micros("b_settled"), uncollected_micros=_micros("b_uncollected"))
)

_KEY_ID = bindparam("b_key_id", type_=api_keys.c.id.type)
_KEY_AMOUNT = _micros("b_amount")
# The conditional UPDATE runs in a CTE so an unbudgeted key is read, never written or locked.
_KEY_RESERVED = (
    update(api_keys)
    .where(
        api_keys.c.id == _KEY_ID,
        api_keys.c.org_id == _ORG,
        api_keys.c.budget_micros.is_not(None),
        api_keys.c.budget_spent_micros + api_keys.c.budget_reserved_micros + _KEY_AMOUNT
        <= api_keys.c.budget_micros,
    )
    .values(budget_reserved_micros=api_keys.c.budget_reserved_micros + _KEY_AMOUNT)
    .returning(api_keys.c.id)
    .cte("reserved")
)
_RESERVE_KEY_BUDGET = select(
    api_keys.c.budget_micros.is_not(None).label("has_budget"),
    exists(select(_KEY_RESERVED.c.id)).label("reserved"),
).where(api_keys.c.id == _KEY_ID, api_keys.c.org_id == _ORG)

_MOVE_KEY_BUDGET = (
    update(api_keys)
    .where(api_keys.c.id == _KEY_ID)
    .values(
        budget_reserved_micros=api_keys.c.budget_reserved_micros + _micros("b_reserved_delta"),
        budget_spent_micros=func.greatest(
            api_keys.c.budget_spent_micros + _micros("b_spent_delta"), 0
        ),
    )
)
_MOVE_KEY_BUDGET_BUDGETED = _MOVE_KEY_BUDGET.where(api_keys.c.budget_micros.is_not(None))


@dataclass(frozen=True)
class AccountTotals:
    """An account's figures as a statement read or left them."""

    balance_micros: int
    available_micros: int


@dataclass(frozen=True)
class KeyBudgetReservation:
    has_budget: bool  # the key has a credit budget at all
    reserved: bool  # and this reserve fitted it (never true without a budget)


def _entry(row: RowMapping | None) -> Entry | None:
    return None if row is None else Entry.model_validate(dict(row))


def _hold(row: RowMapping | None) -> HoldState | None:
    return None if row is None else HoldState.model_validate(dict(row))


# --- accounts ---------------------------------------------------------------------------


async def insert_account(session: Executor, org_id: uuid.UUID) -> bool:
    """Create the account if the org exists; False when it already existed or no such org."""
    stmt = (
        insert(accounts)
        .from_select(["org_id"], select(orgs.c.id).where(orgs.c.id == org_id))
        .on_conflict_do_nothing(index_elements=[accounts.c.org_id])
        .returning(accounts.c.org_id)
    )
    return (await session.execute(stmt)).first() is not None


async def get_account(
    session: Executor, org_id: uuid.UUID, *, lock: bool = False
) -> AccountTotals | None:
    """With `lock`, the row stays locked until the transaction ends."""
    stmt = _GET_ACCOUNT_LOCKED if lock else _GET_ACCOUNT
    row = (await session.execute(stmt, {"b_org": org_id})).first()
    return None if row is None else AccountTotals(int(row[0]), int(row[1]))


async def move_account(
    session: Executor,
    org_id: uuid.UUID,
    *,
    balance_delta: int,
    available_delta: int,
    guard_available: bool = False,
) -> AccountTotals | None:
    """Apply both deltas in one statement; with `guard_available` only if available stays ≥ 0,
    and a positive balance delta only if the balance stays within BIGINT.

    Returns the new figures, or None when the row is missing or a guard held.
    """
    if guard_available:
        stmt = _MOVE_ACCOUNT_GUARDED
    else:
        stmt = _MOVE_ACCOUNT_CAPPED if balance_delta > 0 else _MOVE_ACCOUNT
    params = {
        "b_org": org_id,
        "b_balance_delta": balance_delta,
        "b_available_delta": available_delta,
    }
    row = (await session.execute(stmt, params)).first()
    return None if row is None else AccountTotals(int(row[0]), int(row[1]))


async def release_to_accounts(session: Executor, amounts: Mapping[uuid.UUID, int]) -> None:
    """Give released micros back to available, one statement per org in sorted order."""
    params = [{"b_org": org, "b_amount": amounts[org]} for org in sorted(amounts) if amounts[org]]
    if not params:
        return
    stmt = (
        update(accounts)
        .where(accounts.c.org_id == bindparam("b_org"))
        .values(
            available_micros=accounts.c.available_micros + bindparam("b_amount"),
            version=accounts.c.version + 1,
            updated_at=func.now(),
        )
    )
    await session.execute(stmt, params)


# --- what a refused reserve could have had ------------------------------------------------

# The org's available credit, what the key's budget has left and the tightest hard budget
# policy's room this month, in one statement (read on the refusal path only).
_SPENDABLE = text(
    """
    SELECT a.available_micros,
      (SELECT k.budget_micros - k.budget_spent_micros - k.budget_reserved_micros
         FROM api_keys AS k
        WHERE k.id = :b_key AND k.org_id = a.org_id AND k.budget_micros IS NOT NULL),
      (SELECT min(p.limit_micros - coalesce(u.spent_micros, 0) - coalesce(u.reserved_micros, 0))
         FROM budget_policies AS p
         LEFT JOIN budget_usage AS u ON u.policy_id = p.id AND u.period = :b_period
        WHERE p.id = ANY(:b_policies) AND p.org_id = a.org_id)
    FROM credit_accounts AS a WHERE a.org_id = :b_org
    """
).bindparams(
    bindparam("b_org", type_=accounts.c.org_id.type),
    bindparam("b_key", type_=UUID(as_uuid=True)),
    bindparam("b_policies", type_=ARRAY(UUID(as_uuid=True))),
    bindparam("b_period", type_=Date()),
)


@dataclass(frozen=True)
class Spendable:
    """What a hold could take now: the smallest of the three (None: no such limit)."""

    available_micros: int
    key_left_micros: int | None
    budget_left_micros: int | None

    @property
    def micros(self) -> int:
        limits = [self.available_micros, self.key_left_micros, self.budget_left_micros]
        return max(0, min(x for x in limits if x is not None))


async def spendable(
    session: Executor,
    org_id: uuid.UUID,
    *,
    api_key_id: uuid.UUID | None,
    hard_policies: Sequence[uuid.UUID],
    period: date,
) -> Spendable | None:
    """None when the org has no credit account."""
    params = {
        "b_org": org_id,
        "b_key": api_key_id,
        "b_policies": list(hard_policies),
        "b_period": period,
    }
    row = (await session.execute(_SPENDABLE, params)).first()
    if row is None:
        return None
    return Spendable(
        int(row[0]),
        None if row[1] is None else int(row[1]),
        None if row[2] is None else int(row[2]),
    )


# --- api key budgets -----------------------------------------------------------------------


async def reserve_key_budget(
    session: Executor, key_id: uuid.UUID, org_id: uuid.UUID, amount: int
) -> KeyBudgetReservation | None:
    """Reserve on a budgeted key in one round trip; None if no such key.

    The conditional UPDATE runs in a CTE so an unbudgeted key is read, never written or locked.
    """
    params = {"b_key_id": key_id, "b_org": org_id, "b_amount": amount}
    row = (await session.execute(_RESERVE_KEY_BUDGET, params)).first()
    return None if row is None else KeyBudgetReservation(bool(row[0]), bool(row[1]))


async def move_key_budget(
    session: Executor,
    key_id: uuid.UUID,
    *,
    reserved_delta: int,
    spent_delta: int,
    budgeted_only: bool,
) -> None:
    """Shift a key's reserved/spent; `budgeted_only` leaves keys without a budget untouched.

    Spent never goes below zero: a refund after an operator reset the counter must not fail.
    """
    stmt = _MOVE_KEY_BUDGET_BUDGETED if budgeted_only else _MOVE_KEY_BUDGET
    params = {"b_key_id": key_id, "b_reserved_delta": reserved_delta, "b_spent_delta": spent_delta}
    await session.execute(stmt, params)


async def release_key_budgets(session: Executor, amounts: Mapping[uuid.UUID, int]) -> None:
    params = [{"b_key": key, "b_amount": amounts[key]} for key in sorted(amounts) if amounts[key]]
    if not params:
        return
    k = api_keys.c
    stmt = (
        update(api_keys)
        .where(k.id == bindparam("b_key"))
        .values(budget_reserved_micros=k.budget_reserved_micros - bindparam("b_amount"))
    )
    await session.execute(stmt, params)


# --- ledger entries ------------------------------------------------------------------------


async def insert_entry(session: Executor, values: Mapping[str, Any]) -> Entry | None:
    """Append an entry; None when its idempotency key is already taken (nothing written)."""
    return _entry((await session.execute(_INSERT_ENTRY, dict(values))).mappings().first())


async def entry_by_key(session: Executor, key: str) -> Entry | None:
    return _entry((await session.execute(_ENTRY_BY_KEY, {"b_key": key})).mappings().first())


async def entry_by_id(
    session: Executor, entry_id: int, *, org_id: uuid.UUID | None = None, lock: bool = False
) -> Entry | None:
    stmt = select(*_ENTRY_COLUMNS).where(entries.c.id == entry_id)
    if org_id is not None:
        stmt = stmt.where(entries.c.org_id == org_id)
    if lock:
        stmt = stmt.with_for_update()
    return _entry((await session.execute(stmt)).mappings().first())


async def refund_of(session: Executor, entry_id: int) -> Entry | None:
    stmt = select(*_ENTRY_COLUMNS).where(
        entries.c.refunds_entry_id == entry_id, entries.c.kind == "refund"
    )
    return _entry((await session.execute(stmt)).mappings().first())


async def list_entries(
    session: Executor,
    org_id: uuid.UUID,
    *,
    before_id: int | None,
    limit: int,
    kind: str | None,
    since: datetime | None,
    until: datetime | None,
) -> list[Entry]:
    e = entries.c
    stmt = select(*_ENTRY_COLUMNS).where(e.org_id == org_id)
    if before_id is not None:
        stmt = stmt.where(e.id < before_id)
    if kind is not None:
        stmt = stmt.where(e.kind == kind)
    if since is not None:
        stmt = stmt.where(e.created_at >= since)
    if until is not None:
        stmt = stmt.where(e.created_at < until)
    stmt = stmt.order_by(e.id.desc()).limit(limit)
    rows = (await session.execute(stmt)).mappings().all()
    return [Entry.model_validate(dict(row)) for row in rows]


# --- holds ---------------------------------------------------------------------------------


async def insert_hold(
    session: Executor,
    *,
    org_id: uuid.UUID,
    api_key_id: uuid.UUID | None,
    amount: int,
    key_budget: int,
    key: str,
    reference: str | None,
    expires_in: timedelta,
    budgets: Sequence[BudgetClaim] = (),
) -> HoldState | None:
    """Insert a pending hold; None when its idempotency key is already taken.

    `expires_at` comes from the database clock so replicas with skewed clocks agree.
    """
    params = {
        "b_id": uuid.uuid4(),
        "b_org": org_id,
        "b_api_key_id": api_key_id,
        "b_amount": amount,
        "b_key_budget": key_budget,
        "b_key": key,
        "b_reference": reference,
        "b_expires_in": expires_in,
        "b_budgets": [c.model_dump(mode="json") for c in budgets] or None,
    }
    return _hold((await session.execute(_INSERT_HOLD, params)).mappings().first())


async def insert_lost_hold(
    session: Executor,
    hold_id: uuid.UUID,
    *,
    org_id: uuid.UUID,
    amount: int,
    key: str,
    reference: str | None,
) -> bool:
    """Record a hold as already expired (nothing reserved); False if its id or key exists."""
    params = {"b_id": hold_id, "b_org": org_id, "b_amount": amount, "b_key": key,
              "b_reference": reference}  # fmt: skip
    return (await session.execute(_INSERT_LOST_HOLD, params)).first() is not None


async def hold_by_key(session: Executor, key: str) -> HoldState | None:
    return _hold((await session.execute(_HOLD_BY_KEY, {"b_key": key})).mappings().first())


async def get_hold(
    session: Executor, hold_id: uuid.UUID, *, lock: bool = False
) -> HoldState | None:
    stmt = _GET_HOLD_LOCKED if lock else _GET_HOLD
    return _hold((await session.execute(stmt, {"b_hold": hold_id})).mappings().first())


async def claim_hold(
    session: Executor,
    hold_id: uuid.UUID,
    *,
    from_status: str,
    to_status: str,
    settle_up_to: int | None = None,
) -> HoldState | None:
    """Move a hold out of `from_status` exactly once; None if it was not in that status.

    With `settle_up_to`, settled_micros is set to min(that, amount) in the same statement,
    which is already the final figure whenever the actual cost fits the hold.
    """
    params: dict[str, Any] = {"b_hold": hold_id, "b_from": from_status, "b_to": to_status}
    stmt = _CLAIM_HOLD
    if settle_up_to is not None:
        stmt = _CLAIM_HOLD_SETTLING
        params["b_settle_up_to"] = settle_up_to
    return _hold((await session.execute(stmt, params)).mappings().first())


async def record_settlement(
    session: Executor, hold_id: uuid.UUID, *, settled: int, uncollected: int
) -> None:
    params = {"b_hold": hold_id, "b_settled": settled, "b_uncollected": uncollected}
    await session.execute(_RECORD_SETTLEMENT, params)


async def expire_holds(
    session: Executor, *, now: datetime | None, limit: int
) -> Sequence[HoldState]:
    """Mark up to `limit` overdue pending holds expired, skipping rows other sweepers hold."""
    cutoff = func.now() if now is None else literal(now)
    stale = (
        select(holds.c.id)
        .where(holds.c.status == "pending", holds.c.expires_at <= cutoff)
        .order_by(holds.c.expires_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .cte("stale")
    )
    stmt = (
        update(holds)
        .where(holds.c.id == stale.c.id)
        .values(status="expired", resolved_at=func.now())
        .returning(*_HOLD_COLUMNS)
    )
    rows = (await session.execute(stmt)).mappings().all()
    return [HoldState.model_validate(dict(row)) for row in rows]
