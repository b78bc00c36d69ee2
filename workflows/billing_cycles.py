"""Monthly allocations and nightly retention, run by Temporal schedules (DESIGN.md §7).

`MonthlyAllocation` pages through orgs by id in batches; each batch is one activity (one
transaction) and every credit is keyed `alloc:{org}:{period}`, so re-running a period (a
retry, a manual trigger, a backfill) credits nobody twice. The period is explicit when given
and otherwise derived from the schedule's `TemporalScheduledStartTime`, so a late or
backfilled run still allocates the month it was scheduled for. Long runs continue as new
with their cursor and running totals.

`Retention` rolls closed months of request logs into `usage_monthly`, then deletes expired
content details (only in months whose rollup exists), deletes task results kept in the
result store past their org's window, trims callback response excerpts and drops stale
rate-limit windows, each in bounded batches. All cutoffs come from one instant
(`now`), fixed when the run starts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from pydantic import BaseModel, Field
from temporalio import activity, workflow
from temporalio.common import RetryPolicy, SearchAttributeKey

ALLOCATE_BATCH = "billing.allocate_batch"
RETENTION_PLAN = "retention.plan_rollup"
RETENTION_ROLLUP = "retention.rollup_batch"
RETENTION_DELETE_DETAILS = "retention.delete_details"
RETENTION_TRIM_CALLBACKS = "retention.trim_callbacks"
RETENTION_DELETE_WINDOWS = "retention.delete_rate_windows"
RETENTION_DELETE_RESULTS = "retention.delete_results"
RESULTS_PATCH = "retention-delete-results"

ALLOCATION_SCHEDULE_ID = "monthly-allocations"
ALLOCATION_WORKFLOW_ID = "monthly-allocations"
RETENTION_SCHEDULE_ID = "nightly-retention"
RETENTION_WORKFLOW_ID = "nightly-retention"

SCHEDULED_START = SearchAttributeKey.for_datetime("TemporalScheduledStartTime")
NON_RETRYABLE = ["InvalidField", "InvalidRequest", "NotFound"]
_RETRY = RetryPolicy(maximum_interval=timedelta(minutes=1), non_retryable_error_types=NON_RETRYABLE)


def allocation_workflow_id(period: str) -> str:
    """For runs started by hand; scheduled runs get the schedule's own timestamped ids."""
    return f"{ALLOCATION_WORKFLOW_ID}-{period}"


def period_of(moment: datetime) -> str:
    utc = moment.astimezone(UTC)
    return f"{utc.year:04d}-{utc.month:02d}"


# --- allocations ---------------------------------------------------------------------------


class AllocationTotals(BaseModel):
    orgs: int = 0
    credited: int = 0
    already: int = 0
    skipped: int = 0
    credited_micros: int = 0
    runs: int = 1


class AllocationInput(BaseModel):
    period: str | None = None
    after_org_id: str | None = None
    batch_size: int = Field(default=500, gt=0, le=5_000)
    batches_per_run: int = Field(default=40, gt=0)
    totals: AllocationTotals = Field(default_factory=AllocationTotals)


class AllocationBatch(BaseModel):
    period: str
    after_org_id: str | None
    limit: int


class AllocationBatchOut(BaseModel):
    orgs: int
    credited: int
    already: int
    skipped: int
    credited_micros: int
    last_org_id: str | None


class AllocationReport(BaseModel):
    period: str
    totals: AllocationTotals


@workflow.defn(name="MonthlyAllocation")
class MonthlyAllocationWorkflow:
    @workflow.run
    async def run(self, params: AllocationInput) -> AllocationReport:
        period = params.period or self._scheduled_period()
        totals = params.totals
        after = params.after_org_id
        for _ in range(params.batches_per_run):
            batch = await workflow.execute_activity_method(
                BillingCycleActivityDefs.allocate_batch,
                AllocationBatch(period=period, after_org_id=after, limit=params.batch_size),
                start_to_close_timeout=timedelta(minutes=2),
                retry_policy=_RETRY,
            )
            totals = AllocationTotals(
                orgs=totals.orgs + batch.orgs,
                credited=totals.credited + batch.credited,
                already=totals.already + batch.already,
                skipped=totals.skipped + batch.skipped,
                credited_micros=totals.credited_micros + batch.credited_micros,
                runs=totals.runs,
            )
            if batch.orgs < params.batch_size or batch.last_org_id is None:
                return AllocationReport(period=period, totals=totals)
            after = batch.last_org_id
        workflow.continue_as_new(
            params.model_copy(
                update={
                    "period": period,
                    "after_org_id": after,
                    "totals": totals.model_copy(update={"runs": totals.runs + 1}),
                }
            )
        )

    @staticmethod
    def _scheduled_period() -> str:
        scheduled = workflow.info().typed_search_attributes.get(SCHEDULED_START)
        return period_of(scheduled or workflow.now())


# --- retention -----------------------------------------------------------------------------


class RetentionInput(BaseModel):
    now: datetime | None = None
    batch_size: int = Field(default=1_000, gt=0, le=10_000)
    org_batch_size: int = Field(default=500, gt=0, le=10_000)
    max_batches: int = Field(default=500, gt=0)


class RetentionClock(BaseModel):
    now: datetime


class RollupWindow(BaseModel):
    start: datetime
    end: datetime


class RollupStep(BaseModel):
    start: datetime
    end: datetime
    after_org_id: str | None
    limit: int


class RollupStepOut(BaseModel):
    orgs: int
    buckets_written: int
    last_org_id: str | None


class RetentionStep(BaseModel):
    now: datetime
    limit: int


class RetentionReport(BaseModel):
    now: datetime
    rolled_from: datetime
    rolled_to: datetime
    buckets_written: int
    details_deleted: int
    callbacks_trimmed: int
    rate_windows_deleted: int
    results_deleted: int = 0
    complete: bool


class BillingCycleActivityDefs(Protocol):
    """Implemented by `activities.billing_cycles.BillingCycleActivities` (see
    `workflows.media`)."""

    @activity.defn(name=ALLOCATE_BATCH)
    async def allocate_batch(self, batch: AllocationBatch) -> AllocationBatchOut: ...

    @activity.defn(name=RETENTION_PLAN)
    async def plan_rollup(self, clock: RetentionClock) -> RollupWindow: ...

    @activity.defn(name=RETENTION_ROLLUP)
    async def rollup_batch(self, step: RollupStep) -> RollupStepOut: ...

    @activity.defn(name=RETENTION_DELETE_DETAILS)
    async def delete_details(self, step: RetentionStep) -> int: ...

    @activity.defn(name=RETENTION_TRIM_CALLBACKS)
    async def trim_callbacks(self, step: RetentionStep) -> int: ...

    @activity.defn(name=RETENTION_DELETE_WINDOWS)
    async def delete_rate_windows(self, step: RetentionStep) -> int: ...

    @activity.defn(name=RETENTION_DELETE_RESULTS)
    async def delete_results(self, step: RetentionStep) -> int: ...


# One of the retention steps that deletes or trims in batches and says how many rows.
RetentionBatch = Callable[[BillingCycleActivityDefs, RetentionStep], Awaitable[int]]


@workflow.defn(name="Retention")
class RetentionWorkflow:
    @workflow.run
    async def run(self, params: RetentionInput) -> RetentionReport:
        now = params.now or workflow.now()
        window = await workflow.execute_activity_method(
            BillingCycleActivityDefs.plan_rollup,
            RetentionClock(now=now),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=_RETRY,
        )
        complete = True
        written, after = 0, None
        for _ in range(params.max_batches):
            step = await workflow.execute_activity_method(
                BillingCycleActivityDefs.rollup_batch,
                RollupStep(
                    start=window.start, end=window.end, after_org_id=after,
                    limit=params.org_batch_size,
                ),
                start_to_close_timeout=timedelta(minutes=10),
                retry_policy=_RETRY,
            )  # fmt: skip
            written += step.buckets_written
            if step.orgs < params.org_batch_size or step.last_org_id is None:
                break
            after = step.last_org_id
        else:
            complete = False
        counts: list[int] = []
        steps: tuple[RetentionBatch, ...] = (
            BillingCycleActivityDefs.delete_details,
            BillingCycleActivityDefs.trim_callbacks,
            BillingCycleActivityDefs.delete_rate_windows,
        )
        for step_of in steps:
            total, done = await self._drain(step_of, now, params)
            counts.append(total)
            complete = complete and done
        results_deleted = 0
        if workflow.patched(RESULTS_PATCH):
            results_deleted, done = await self._drain(
                BillingCycleActivityDefs.delete_results, now, params
            )
            complete = complete and done
        return RetentionReport(
            now=now,
            rolled_from=window.start,
            rolled_to=window.end,
            buckets_written=written,
            details_deleted=counts[0],
            callbacks_trimmed=counts[1],
            rate_windows_deleted=counts[2],
            results_deleted=results_deleted,
            complete=complete,
        )

    @staticmethod
    async def _drain(
        step: RetentionBatch, now: datetime, params: RetentionInput
    ) -> tuple[int, bool]:
        """Run one batched step until a short batch; (rows affected, finished)."""
        total = 0
        for _ in range(params.max_batches):
            count = await workflow.execute_activity_method(
                step,
                RetentionStep(now=now, limit=params.batch_size),
                start_to_close_timeout=timedelta(minutes=5),
                retry_policy=_RETRY,
            )
            total += count
            if count < params.batch_size:
                return total, True
        return total, False
