"""Ledger activities: each opens its own transaction and is safe to retry.

Expiring holds is naturally idempotent: a retried batch finds the holds it already expired
no longer pending, so it can never release credit twice.
"""

from __future__ import annotations

from temporalio import activity

from activities.deps import ActivityDeps
from domain.ledger import service as ledger
from schema.unit_of_work import unit_of_work
from workflows.holds import (
    EXPIRE_STALE_HOLDS,
    LedgerActivityDefs,
    SweepBatch,
    SweepBatchResult,
)


class LedgerActivities(LedgerActivityDefs):
    def __init__(self, deps: ActivityDeps) -> None:
        self._deps = deps

    @activity.defn(name=EXPIRE_STALE_HOLDS)
    async def expire_stale_holds(self, batch: SweepBatch) -> SweepBatchResult:
        async with unit_of_work(self._deps.sessions) as session:
            result = await ledger.expire_stale_holds(session, now=None, limit=batch.limit)
        if result.expired:
            activity.logger.info(
                "expired stale holds",
                extra={"expired": result.expired, "released_micros": result.released_micros},
            )
        return SweepBatchResult(expired=result.expired, released_micros=result.released_micros)
