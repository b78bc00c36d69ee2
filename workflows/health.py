"""A trivial workflow that proves client → server → worker → activity → database wiring."""

from __future__ import annotations

from datetime import timedelta
from typing import Protocol

from pydantic import BaseModel
from temporalio import activity, workflow


class HealthReport(BaseModel):
    worker: str
    database: str


PING_DATABASE = "health.ping_database"


class HealthActivityDefs(Protocol):
    """Implemented by `activities.health.HealthActivities` (see `workflows.media`)."""

    @activity.defn(name=PING_DATABASE)
    async def ping_database(self) -> str: ...


@workflow.defn(name="Health")
class HealthWorkflow:
    @workflow.run
    async def run(self) -> HealthReport:
        database = await workflow.execute_activity_method(
            HealthActivityDefs.ping_database,
            start_to_close_timeout=timedelta(seconds=10),
        )
        return HealthReport(worker="ok", database=database)
