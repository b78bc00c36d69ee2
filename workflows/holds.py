"""Sweeps expired holds so a crashed request never strands credits (DESIGN.md §3).

Started every minute by the `hold-sweeper` schedule. Each activity call expires one batch in
its own transaction; the workflow keeps going while batches come back full, up to a bound,
so one run drains a backlog without growing an unbounded history.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta

from pydantic import BaseModel, Field
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

from workflows.media import RECOVER_STUCK as RECOVER_STUCK_TASKS

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


@workflow.defn(name="HoldSweep")
class HoldSweepWorkflow:
    @workflow.run
    async def run(self, params: SweepInput) -> SweepReport:
        report = SweepReport(batches=0, expired=0, released_micros=0)
        while report.batches < params.max_batches:
            batch = await workflow.execute_activity(
                EXPIRE_STALE_HOLDS,
                SweepBatch(limit=params.batch_size),
                result_type=SweepBatchResult,
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
            await workflow.execute_activity(
                RECOVER_STUCK_TASKS,
                params.stuck_task_after_s,
                result_type=int,
                start_to_close_timeout=timedelta(seconds=60),
                retry_policy=RetryPolicy(maximum_attempts=2),
            )
        return report
