"""SQL for budget policies, their monthly counters and their alerts.

Lock order: every counter write runs inside a ledger operation that has already locked the
org's credit account row (reserve, settle, void, sweep and refund all move the account
first), so two transactions never hold one org's counters in opposite orders.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import (
    BigInteger,
    Date,
    String,
    bindparam,
    cast,
    delete,
    func,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, UUID, insert

from domain.budgets.models import BudgetClaim
from schema.audit import AuditEvent
from schema.base import table_of
from schema.db import Executor
from schema.org_structure import BudgetAlert, BudgetPolicy, BudgetUsage

P = table_of(BudgetPolicy)
U = table_of(BudgetUsage)
A = table_of(BudgetAlert)
AUDIT = table_of(AuditEvent)


@dataclass(frozen=True)
class PolicyUsage:
    """A policy's month so far."""

    spent_micros: int
    reserved_micros: int


@dataclass(frozen=True)
class PolicyMode:
    policy_id: uuid.UUID
    mode: str  # hard | soft


_IDS = bindparam("b_ids", type_=ARRAY(UUID(as_uuid=True)))
_AMOUNTS = bindparam("b_amounts", type_=ARRAY(BigInteger()))
_PERIODS = bindparam("b_periods", type_=ARRAY(Date()))

# One statement for all of a request's policies. A new month's row is inserted only if the
# hold fits the limit at all; an existing row takes the hold only if spent + reserved + hold
# stays within the limit (soft policies reserve 0, so they always pass). A policy that does
# not come back was refused (or deleted meanwhile, which the caller tells apart).
_RESERVE = text(
    """
    INSERT INTO budget_usage (policy_id, period, spent_micros, reserved_micros)
    SELECT r.policy_id, :b_period, 0, r.amount
    FROM unnest(:b_ids, :b_amounts) AS r(policy_id, amount)
    JOIN budget_policies p ON p.id = r.policy_id
    WHERE r.amount <= p.limit_micros
    ORDER BY r.policy_id
    ON CONFLICT (policy_id, period) DO UPDATE
    SET reserved_micros = budget_usage.reserved_micros + EXCLUDED.reserved_micros
    WHERE EXCLUDED.reserved_micros = 0
       OR budget_usage.spent_micros + budget_usage.reserved_micros + EXCLUDED.reserved_micros
          <= (SELECT limit_micros FROM budget_policies WHERE id = budget_usage.policy_id)
    RETURNING policy_id
    """
).bindparams(_IDS, _AMOUNTS, bindparam("b_period", type_=Date()))

# Settle, void, sweep and refund: give back what was reserved, add what was charged (a
# refund adds a negative amount, floored at 0). Returns what alert checks need.
_MOVE = text(
    """
    UPDATE budget_usage u
    SET reserved_micros = u.reserved_micros - r.release,
        spent_micros = greatest(u.spent_micros + :b_spent, 0)
    FROM unnest(:b_ids, :b_periods, :b_amounts) AS r(policy_id, period, release),
         budget_policies p
    WHERE u.policy_id = r.policy_id AND u.period = r.period AND p.id = u.policy_id
    RETURNING u.policy_id, u.period, u.spent_micros, p.org_id, p.limit_micros,
              p.alert_thresholds
    """
).bindparams(_IDS, _PERIODS, _AMOUNTS, bindparam("b_spent", type_=BigInteger()))

_STILL_ENFORCED = select(P.c.id).where(P.c.id == func.any(_IDS), P.c.enabled.is_(True))


async def reserve(
    session: Executor, period: date, amounts: Mapping[uuid.UUID, int]
) -> set[uuid.UUID]:
    """The policies that took their amount (sorted input keeps one lock order)."""
    ids = sorted(amounts)
    params = {"b_ids": ids, "b_amounts": [amounts[i] for i in ids], "b_period": period}
    return {row[0] for row in await session.execute(_RESERVE, params)}


async def still_enforced(session: Executor, ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    return {row[0] for row in await session.execute(_STILL_ENFORCED, {"b_ids": list(ids)})}


async def move(
    session: Executor, claims: Sequence[BudgetClaim], *, release: bool, spent: int
) -> list[Any]:
    """Release each claim's reservation (when `release`) and add `spent` to its month."""
    params = {
        "b_ids": [c.policy_id for c in claims],
        "b_periods": [c.period for c in claims],
        "b_amounts": [c.micros if release else 0 for c in claims],
        "b_spent": spent,
    }
    return list(await session.execute(_MOVE, params))


async def release_totals(session: Executor, totals: Mapping[tuple[uuid.UUID, date], int]) -> None:
    """The sweeper's batch release: one reservation total per policy and month. Zero totals
    are skipped, as the ledger skips zero account releases: a counter is only ever locked
    by a transaction that already holds its org's account row (the lock order above)."""
    keys = sorted(k for k, v in totals.items() if v)
    if not keys:
        return
    params = {
        "b_ids": [k[0] for k in keys],
        "b_periods": [k[1] for k in keys],
        "b_amounts": [totals[k] for k in keys],
        "b_spent": 0,
    }
    await session.execute(_MOVE, params)


async def insert_alerts(session: Executor, rows: Sequence[dict[str, Any]]) -> int:
    """Each (policy, month, threshold) is recorded once, whoever crosses it first, and the
    ones that are new also land in the org's audit log, in the same statement."""
    if not rows:
        return 0
    new = (
        insert(A)
        .values(list(rows))
        .on_conflict_do_nothing()
        .returning(A.c.org_id, A.c.policy_id, A.c.period, A.c.threshold_pct, A.c.spent_micros,
                   A.c.limit_micros)
        .cte("new_alerts")
    )  # fmt: skip
    details = func.jsonb_build_object(
        "period", new.c.period, "threshold_pct", new.c.threshold_pct,
        "spent_micros", new.c.spent_micros, "limit_micros", new.c.limit_micros,
    )  # fmt: skip
    audit = insert(AUDIT).from_select(
        ["org_id", "actor_kind", "action", "target_type", "target_id", "after"],
        select(
            new.c.org_id,
            literal("system"),
            literal("budget.alert"),
            literal("budget"),
            cast(new.c.policy_id, String),
            details,
        ),
    )
    result = await session.execute(audit.returning(AUDIT.c.id))
    return len(result.all())


# --- policies ------------------------------------------------------------------------------


async def list_policies(session: Executor, org_id: uuid.UUID) -> list[Any]:
    stmt = select(P).where(P.c.org_id == org_id).order_by(P.c.created_at, P.c.id)
    return list((await session.execute(stmt)).mappings().all())


async def get_policy(
    session: Executor, org_id: uuid.UUID, policy_id: uuid.UUID, *, lock: bool = False
) -> Any | None:
    stmt = select(P).where(P.c.org_id == org_id, P.c.id == policy_id)
    if lock:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).mappings().first()


async def insert_policy(session: Executor, values: dict[str, Any]) -> Any:
    stmt = insert(P).values(**values).returning(*P.c)
    return (await session.execute(stmt)).mappings().one()


async def update_policy(
    session: Executor, org_id: uuid.UUID, policy_id: uuid.UUID, values: dict[str, Any]
) -> Any:
    stmt = (
        update(P)
        .where(P.c.org_id == org_id, P.c.id == policy_id)
        .values(**values, updated_at=func.now())
        .returning(*P.c)
    )
    return (await session.execute(stmt)).mappings().one()


async def delete_policy(session: Executor, org_id: uuid.UUID, policy_id: uuid.UUID) -> None:
    await session.execute(delete(P).where(P.c.org_id == org_id, P.c.id == policy_id))


async def policies_scoped_to(session: Executor, org_id: uuid.UUID, scope_id: uuid.UUID) -> int:
    stmt = select(func.count()).select_from(P).where(P.c.org_id == org_id, P.c.scope_id == scope_id)
    return int((await session.execute(stmt)).scalar_one())


async def usage_for(
    session: Executor, policy_ids: Sequence[uuid.UUID], period: date
) -> dict[uuid.UUID, PolicyUsage]:
    """Per policy for one month; absent means nothing yet."""
    if not policy_ids:
        return {}
    stmt = select(U.c.policy_id, U.c.spent_micros, U.c.reserved_micros).where(
        U.c.policy_id.in_(policy_ids), U.c.period == period
    )
    return {r[0]: PolicyUsage(int(r[1]), int(r[2])) for r in await session.execute(stmt)}


async def list_alerts(
    session: Executor, org_id: uuid.UUID, policy_id: uuid.UUID | None = None, limit: int = 200
) -> list[Any]:
    stmt = select(A).where(A.c.org_id == org_id)
    if policy_id is not None:
        stmt = stmt.where(A.c.policy_id == policy_id)
    stmt = stmt.order_by(A.c.created_at.desc(), A.c.threshold_pct.desc()).limit(limit)
    return list((await session.execute(stmt)).mappings().all())


async def applicable(
    session: Executor,
    org_id: uuid.UUID,
    *,
    key_id: uuid.UUID,
    user_id: uuid.UUID | None,
    department_id: uuid.UUID | None,
    cost_center_id: uuid.UUID | None,
) -> list[PolicyMode]:
    """Enabled policies reaching a key: its own, its creator's, their department's and
    cost center's, in id order."""
    reach = (P.c.scope == "key") & (P.c.scope_id == key_id)
    for scope, value in (
        ("member", user_id),
        ("department", department_id),
        ("cost_center", cost_center_id),
    ):
        if value is not None:
            reach = reach | ((P.c.scope == scope) & (P.c.scope_id == value))
    stmt = (
        select(P.c.id, P.c.mode)
        .where(P.c.org_id == org_id, P.c.enabled.is_(True), reach)
        .order_by(P.c.id)
    )
    return [PolicyMode(r[0], r[1]) for r in await session.execute(stmt)]
