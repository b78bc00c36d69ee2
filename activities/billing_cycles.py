"""Allocation and retention activities: one bounded batch per call, one transaction each.

All of them are idempotent (ledger keys for allocations, recompute-not-add for rollups,
deletes and trims that find nothing left to do), so Temporal may retry any of them freely.
"""

from __future__ import annotations

import uuid

from temporalio import activity

from activities.deps import ActivityDeps
from activities.payments import domain_errors
from config.runtime import result_store
from domain.billing_cycles import allocations, retention
from schema.unit_of_work import unit_of_work
from workflows.billing_cycles import (
    ALLOCATE_BATCH,
    RETENTION_DELETE_DETAILS,
    RETENTION_DELETE_RESULTS,
    RETENTION_DELETE_WINDOWS,
    RETENTION_PLAN,
    RETENTION_ROLLUP,
    RETENTION_TRIM_CALLBACKS,
    AllocationBatch,
    AllocationBatchOut,
    BillingCycleActivityDefs,
    RetentionClock,
    RetentionStep,
    RollupStep,
    RollupStepOut,
    RollupWindow,
)


def _org(value: str | None) -> uuid.UUID | None:
    return uuid.UUID(value) if value else None


class BillingCycleActivities(BillingCycleActivityDefs):
    def __init__(self, deps: ActivityDeps) -> None:
        self._deps = deps
        self._store = result_store(deps.settings).store

    @activity.defn(name=ALLOCATE_BATCH)
    async def allocate_batch(self, batch: AllocationBatch) -> AllocationBatchOut:
        with domain_errors():
            async with unit_of_work(self._deps.sessions) as session:
                result = await allocations.allocate_batch(
                    session,
                    batch.period,
                    after=_org(batch.after_org_id),
                    limit=batch.limit,
                    tiers=self._deps.settings.tier_allocations,
                )
        if result.credited:
            activity.logger.info(
                "allocated monthly credits",
                extra={"period": batch.period, "orgs": result.credited},
            )
        return AllocationBatchOut(
            orgs=result.orgs,
            credited=result.credited,
            already=result.already,
            skipped=result.skipped,
            credited_micros=result.credited_micros,
            last_org_id=str(result.last_org_id) if result.last_org_id else None,
        )

    @activity.defn(name=RETENTION_PLAN)
    async def plan_rollup(self, clock: RetentionClock) -> RollupWindow:
        async with unit_of_work(self._deps.sessions) as session:
            plan = await retention.plan_rollup(session, clock.now)
        return RollupWindow(start=plan.start, end=plan.end)

    @activity.defn(name=RETENTION_ROLLUP)
    async def rollup_batch(self, step: RollupStep) -> RollupStepOut:
        plan = retention.RollupPlan(start=step.start, end=step.end)
        with domain_errors():
            async with unit_of_work(self._deps.sessions) as session:
                result = await retention.rollup_batch(
                    session, plan, after=_org(step.after_org_id), limit=step.limit
                )
        return RollupStepOut(
            orgs=result.orgs,
            buckets_written=result.buckets_written,
            last_org_id=str(result.last_org_id) if result.last_org_id else None,
        )

    @activity.defn(name=RETENTION_DELETE_DETAILS)
    async def delete_details(self, step: RetentionStep) -> int:
        with domain_errors():
            async with unit_of_work(self._deps.sessions) as session:
                return await retention.delete_details_batch(session, step.now, limit=step.limit)

    @activity.defn(name=RETENTION_TRIM_CALLBACKS)
    async def trim_callbacks(self, step: RetentionStep) -> int:
        with domain_errors():
            async with unit_of_work(self._deps.sessions) as session:
                return await retention.trim_callbacks_batch(session, step.now, limit=step.limit)

    @activity.defn(name=RETENTION_DELETE_WINDOWS)
    async def delete_rate_windows(self, step: RetentionStep) -> int:
        with domain_errors():
            async with unit_of_work(self._deps.sessions) as session:
                return await retention.delete_rate_windows_batch(
                    session, step.now, limit=step.limit
                )

    @activity.defn(name=RETENTION_DELETE_RESULTS)
    async def delete_results(self, step: RetentionStep) -> int:
        with domain_errors():
            async with unit_of_work(self._deps.sessions) as session:
                return await retention.delete_results_batch(
                    session, self._store, step.now, limit=step.limit
                )
