"""Activities behind the health workflow."""

from __future__ import annotations

from sqlalchemy import text
from temporalio import activity

from activities.deps import ActivityDeps
from schema.unit_of_work import unit_of_work
from workflows.health import PING_DATABASE, HealthActivityDefs


class HealthActivities(HealthActivityDefs):
    def __init__(self, deps: ActivityDeps) -> None:
        self._deps = deps

    @activity.defn(name=PING_DATABASE)
    async def ping_database(self) -> str:
        async with unit_of_work(self._deps.sessions) as session:
            await session.execute(text("SELECT 1"))
        return "ok"
