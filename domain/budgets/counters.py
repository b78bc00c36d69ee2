"""The ledger's side of budget policies: reserve with a hold, release or spend with it.

These run inside the ledger's reserve/settle/void/sweep/refund, in the caller's
transaction, after the org's account row is locked; they never commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date
from typing import Any

from domain.budgets import repository as repo
from domain.budgets.models import BudgetClaim, BudgetRef
from schema.db import Executor


async def reserve(
    session: Executor, refs: Sequence[BudgetRef], amount: int, period: date
) -> list[BudgetClaim] | None:
    """Claims for every policy still in force, or None (with nothing left behind) when a
    hard one cannot take `amount` this month."""
    amounts = {ref.policy_id: amount if ref.hard else 0 for ref in refs}
    took = await repo.reserve(session, period, amounts)
    claims = [BudgetClaim(policy_id=p, period=period, micros=amounts[p]) for p in sorted(took)]
    missing = [p for p in amounts if p not in took and amounts[p] > 0]
    if missing and await repo.still_enforced(session, missing):
        await repo.move(session, claims, release=True, spent=0)
        return None
    return claims


async def release(session: Executor, claims: Sequence[BudgetClaim]) -> None:
    """A voided hold: give the reservations back, nothing spent."""
    if claims:
        await repo.move(session, claims, release=True, spent=0)


async def spend(
    session: Executor, claims: Sequence[BudgetClaim], charged: int, *, release: bool
) -> int:
    """A settled hold: release its reservations (unless the sweeper already did) and count
    what was charged; record each alert threshold the spend crossed. Returns new alerts."""
    if not claims or (charged == 0 and not release):
        return 0
    rows = await repo.move(session, claims, release=release, spent=charged)
    return await repo.insert_alerts(session, crossed(rows, charged))


async def unspend(session: Executor, claims: Sequence[BudgetClaim], refunded: int) -> None:
    """A refunded debit no longer counts against the month it was spent in."""
    if claims and refunded:
        await repo.move(session, claims, release=False, spent=-refunded)


def crossed(rows: Sequence[Any], charged: int) -> list[dict[str, Any]]:
    """Alert rows for thresholds passed by this charge: before < t% of limit <= after.

    Integer arithmetic (percent * limit against 100 * spent), so a threshold is never
    missed or doubled by rounding."""
    alerts = []
    for policy_id, period, after, org_id, limit, thresholds in rows:
        before = after - charged
        for pct in thresholds or ():
            if before * 100 < pct * limit <= after * 100:
                alerts.append(
                    {
                        "id": uuid.uuid4(),
                        "org_id": org_id,
                        "policy_id": policy_id,
                        "period": period,
                        "threshold_pct": pct,
                        "spent_micros": after,
                        "limit_micros": limit,
                    }
                )
    return alerts
