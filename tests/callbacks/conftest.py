"""Rows a callback needs (an org and a finished task) and delivery settings for loopback.

Tasks belong to another package; these tests only need the rows to exist (attempts reference
them), so they are written straight into the schema tables.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import insert, select

from config.runtime import Resources
from config.settings import Settings
from domain.callbacks import repository as callbacks_repo
from domain.callbacks.delivery import CallbackConfig
from domain.egress.policy import EgressPolicy
from schema.base import table_of
from schema.db import SessionFactory
from schema.tasks import CallbackAttempt, Task
from tests.domain.factories import make_org
from workflows.callbacks import CallbackJob, webhook_id_for

TASKS = table_of(Task)

# Loopback receivers need the test-only escape hatch, set explicitly; timeouts are short so
# the slow-receiver tests finish in about a second.
LOOPBACK = CallbackConfig(
    egress=EgressPolicy(allow_private=True), connect_timeout_s=1.0, read_timeout_s=1.0
)


@dataclass(frozen=True)
class FinishedTask:
    org_id: uuid.UUID
    task_id: uuid.UUID

    def job(self, url: str, *, event: str = "task.succeeded", **payload: Any) -> CallbackJob:
        body = payload or {"type": event, "data": {"id": str(self.task_id), "status": "ok"}}
        return CallbackJob(
            task_id=self.task_id,
            org_id=self.org_id,
            event=event,
            url=url,
            payload=body,
            webhook_id=webhook_id_for(self.task_id, event),
        )


async def make_task(sessions: SessionFactory, *, status: str = "succeeded") -> FinishedTask:
    org_id = await make_org(sessions)
    task_id = uuid.uuid4()
    async with sessions.begin() as s:
        await s.execute(
            insert(TASKS).values(
                id=task_id, org_id=org_id, type="image", model="test-image", status=status
            )
        )
    return FinishedTask(org_id, task_id)


async def attempts(sessions: SessionFactory, task: FinishedTask) -> list[CallbackAttempt]:
    async with sessions() as s:
        return await callbacks_repo.list_attempts(s, task.org_id, task.task_id)


async def task_status(sessions: SessionFactory, task: FinishedTask) -> str:
    async with sessions() as s:
        stmt = select(TASKS.c.status).where(TASKS.c.id == task.task_id)
        return str((await s.execute(stmt)).scalar_one())


@pytest.fixture
async def task(resources: Resources) -> FinishedTask:
    return await make_task(resources.sessions)


@pytest.fixture
def loopback_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "tenant_egress_allow_private": True,
            "callback_connect_timeout_s": 1.0,
            "callback_read_timeout_s": 2.0,
        }
    )
