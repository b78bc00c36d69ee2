"""The relay's usual reserve and settle, each as one autocommit statement (run on the
direct asyncpg pool, `schema.direct`).

Every billed call takes the org's credit-account row lock twice: to reserve and to settle.
Inside an explicit transaction that lock is held across client round trips (the next
statement, then COMMIT), and while this process is busy serving other calls those round
trips wait their turn in the event loop, so one hot org's requests queue behind each other.
As single statements the lock lives only inside PostgreSQL for the statement's own run,
and BEGIN and COMMIT stop costing round trips.

They cover the common case only, and do nothing otherwise (no row comes back, nothing is
written), so the caller falls back to `domain.ledger.service`, which handles every case.
The effects are the same as the general path's, checked by the same ledger tests and
invariants:
- reserve: a key without a credit budget and no budget policies. An idempotency key that
  is already taken makes the statement fail whole (unique violation), never half-apply.
  It runs on the pool that does not wait for the WAL flush, and that is safe: the commit
  is visible to every other transaction at once (so concurrent reserves still see it and
  cannot overspend), and PostgreSQL flushes WAL in order, so the settle's durable commit
  makes the reserve durable too. A database crash in between loses only the pending hold,
  and with it nothing else: the call was not charged yet, and the same crash with a
  durable reserve would have left a hold the sweeper voids, with the same result. Waiting
  for the flush would hold the org's account row lock through an fsync on every call.
- settle: a pending, non-empty hold with no key budget and no budget policies, and a cost
  that fits it; the request log and its single attempt are written in the same statement.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import asyncpg
from sqlalchemy import (
    BigInteger,
    Insert,
    Interval,
    bindparam,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.sql.expression import ClauseElement

from domain.ledger.repository import accounts, entries, holds
from domain.usage.repository import ATTEMPT_DEFAULTS, ATTEMPTS, LOG_DEFAULTS, LOGS
from schema.direct import DirectPool

_ORG = bindparam("b_org", type_=accounts.c.org_id.type)
_AMOUNT = bindparam("b_amount", type_=BigInteger())
_HOLD = bindparam("b_hold", type_=holds.c.id.type)
_COST = bindparam("b_cost", type_=BigInteger())

_TAKEN = (
    update(accounts)
    .where(accounts.c.org_id == _ORG, accounts.c.available_micros >= _AMOUNT)
    .values(
        available_micros=accounts.c.available_micros - _AMOUNT,
        version=accounts.c.version + 1,
        updated_at=func.now(),
    )
    .returning(accounts.c.org_id)
    .cte("taken")
)
_RESERVE = (
    insert(holds)
    .from_select(
        ["id", "org_id", "amount_micros", "status", "idempotency_key", "reference", "expires_at"],
        select(
            bindparam("b_id", type_=holds.c.id.type),
            _TAKEN.c.org_id,
            _AMOUNT,
            literal("pending"),
            bindparam("b_key", type_=holds.c.idempotency_key.type),
            bindparam("b_reference", type_=holds.c.reference.type),
            func.now() + bindparam("b_expires_in", type_=Interval()),
        ),
    )
    .returning(holds.c.id)
)
# (Columns are listed in full: `from_select` would add the model's Python-side defaults as
# extra binds, and those arrive as NULL here.)


async def reserve(
    direct: DirectPool,
    org_id: uuid.UUID,
    amount: int,
    *,
    key: str,
    reference: str | None,
    expires_in: timedelta,
) -> uuid.UUID | None:
    """The new hold's id, or None when the general path must decide (not enough credit,
    no account, or the idempotency key is taken: then nothing was written)."""
    params = {
        "b_org": org_id,
        "b_amount": amount,
        "b_id": uuid.uuid4(),
        "b_key": key,
        "b_reference": reference,
        "b_expires_in": expires_in,
    }
    try:
        row = await direct.fetchrow(_RESERVE, params)
    except asyncpg.UniqueViolationError:
        return None
    return uuid.UUID(str(row[0])) if row else None


# --- settle with its request log -------------------------------------------------------------

_SETTLED = (
    update(holds)
    .where(
        holds.c.id == _HOLD,
        holds.c.status == "pending",
        holds.c.amount_micros > 0,
        holds.c.amount_micros >= _COST,
        holds.c.key_budget_micros == 0,
        or_(
            holds.c.budget_reservations.is_(None),
            func.jsonb_typeof(holds.c.budget_reservations) == "null",
        ),
    )
    .values(status="settled", settled_micros=_COST, resolved_at=func.now())
    .returning(holds.c.org_id, holds.c.amount_micros, holds.c.api_key_id, holds.c.reference)
    .cte("settled")
)
_CHARGED = (
    update(accounts)
    .where(accounts.c.org_id == _SETTLED.c.org_id)
    .values(
        balance_micros=accounts.c.balance_micros - _COST,
        available_micros=accounts.c.available_micros + _SETTLED.c.amount_micros - _COST,
        version=accounts.c.version + 1,
        updated_at=func.now(),
    )
    .returning(accounts.c.balance_micros)
    .cte("charged")
)
_DEBIT = (
    insert(entries)
    .from_select(
        ["org_id", "kind", "amount_micros", "balance_after_micros", "idempotency_key", "actor",
         "api_key_id", "hold_id", "reference"],
        select(
            _SETTLED.c.org_id, literal("debit"), -_COST, _CHARGED.c.balance_micros,
            bindparam("b_entry_key", type_=entries.c.idempotency_key.type), literal("system"),
            _SETTLED.c.api_key_id, _HOLD, _SETTLED.c.reference,
        )
        .select_from(_SETTLED)
        .join(_CHARGED, true())
        .where(_COST > 0),
    )
    .returning(entries.c.id)
    .cte("debit")
)  # fmt: skip

_SETTLE_AND_LOG: dict[tuple[tuple[str, ...], tuple[str, ...]], ClauseElement] = {}


def _settle_and_log(log_keys: tuple[str, ...], attempt_keys: tuple[str, ...]) -> ClauseElement:
    """Built once per set of log and attempt columns (a handful exist) and reused."""
    cached = _SETTLE_AND_LOG.get((log_keys, attempt_keys))
    if cached is not None:
        return cached
    log: Insert = insert(LOGS).from_select(
        list(log_keys),
        select(*(bindparam(f"l_{k}", type_=LOGS.c[k].type) for k in log_keys)).where(
            exists(select(_SETTLED.c.org_id))
        ),
    )
    log_cte = log.returning(LOGS.c.id).cte("log")
    attempt_cte = (
        insert(ATTEMPTS)
        .from_select(
            list(attempt_keys),
            select(*(bindparam(f"a_{k}", type_=ATTEMPTS.c[k].type) for k in attempt_keys)).where(
                exists(select(log_cte.c.id))
            ),
        )
        .cte("attempt")
    )
    stmt = select(
        select(_CHARGED.c.balance_micros).scalar_subquery().label("balance"),
        select(_DEBIT.c.id).scalar_subquery().label("entry_id"),
    ).add_cte(_SETTLED, _CHARGED, _DEBIT, log_cte, attempt_cte)
    if len(_SETTLE_AND_LOG) < 64:
        _SETTLE_AND_LOG[(log_keys, attempt_keys)] = stmt
    return stmt


async def settle_and_log(
    direct: DirectPool,
    hold_id: uuid.UUID,
    cost: int,
    log: dict[str, Any],
    attempt: dict[str, Any],
) -> bool:
    """True when the hold was settled at `cost` and the log written; False when nothing
    was (the hold is not in the common shape, or not pending): use the general path."""
    if LOG_DEFAULTS is None or ATTEMPT_DEFAULTS is None:  # pragma: no cover - schema guard
        return False
    log = {**LOG_DEFAULTS, **log}
    attempt = {**ATTEMPT_DEFAULTS, **attempt}
    params: dict[str, Any] = {f"l_{k}": v for k, v in log.items()}
    params.update({f"a_{k}": v for k, v in attempt.items()})
    params.update({"b_hold": hold_id, "b_cost": cost, "b_entry_key": f"hold:{hold_id}:settle"})
    row = await direct.fetchrow(_settle_and_log(tuple(log), tuple(attempt)), params)
    return row is not None and row[0] is not None
