"""Sweeps expired holds so a crashed request never strands credits (DESIGN.md §3).

Started every minute by the `hold-sweeper` schedule. Each activity call expires one batch in
its own transaction; the workflow keeps going while batches come back full, up to a bound,
so one run drains a backlog without growing an unbounded history.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import Protocol

from pydantic import BaseModel, Field
from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

from workflows.media import TaskActivityDefs

EXPIRE_STALE_HOLDS = "ledger.expire_stale_holds"
SCHEDULE_ID = "hold-sweeper"
WORKFLOW_ID = "hold-sweeper"
SWEEP_EVERY = timedelta(seconds=60)


class SweepInput(BaseModel):
    batch_size: int = Field(default=500, gt=0)
    max_batches: int = Field(default=20, gt=0)
    stuck_task_after_s: int = Field(default=120, gt=0)


class SweepBatch(BaseModel):
    limit: int


class SweepBatchResult(BaseModel):
    expired: int
    released_micros: int


class SweepReport(BaseModel):
    batches: int
    expired: int
    released_micros: int


class LedgerActivityDefs(Protocol):
    """Implemented by `activities.ledger.LedgerActivities` (see `workflows.media`)."""

    @activity.defn(name=EXPIRE_STALE_HOLDS)
    async def expire_stale_holds(self, batch: SweepBatch) -> SweepBatchResult: ...


@workflow.defn(name="HoldSweep")
class HoldSweepWorkflow:
    @workflow.run
    async def run(self, params: SweepInput) -> SweepReport:
        report = SweepReport(batches=0, expired=0, released_micros=0)
        while report.batches < params.max_batches:
            batch = await workflow.execute_activity_method(
                LedgerActivityDefs.expire_stale_holds,
                SweepBatch(limit=params.batch_size),
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=RetryPolicy(maximum_attempts=3),
            )
            report = SweepReport(
                batches=report.batches + 1,
                expired=report.expired + batch.expired,
                released_micros=report.released_micros + batch.released_micros,
            )
            if batch.expired < params.batch_size:
                break
        # Tasks whose workflow never started (a crash right after the 202) are started
        # here; best effort, the next sweep tries again.
        with contextlib.suppress(ActivityError):
            await workflow.execute_activity_method(
                TaskActivityDefs.recover_stuck,
                params.stuck_task_after_s,
                start_to_close_timeout=timedelta(seconds=60),
                retry_policy=RetryPolicy(maximum_attempts=2),
            )
        return report
