"""A trivial workflow that proves client → server → worker → activity → database wiring."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel
from temporalio import workflow


class HealthReport(BaseModel):
    worker: str
    database: str


PING_DATABASE = "health.ping_database"


@workflow.defn(name="Health")
class HealthWorkflow:
    @workflow.run
    async def run(self) -> HealthReport:
        database = await workflow.execute_activity(
            PING_DATABASE,
            result_type=str,
            start_to_close_timeout=timedelta(seconds=10),
        )
        return HealthReport(worker="ok", database=database)
