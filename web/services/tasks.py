"""Async media tasks for the console: the list, and one task with its result previews and
callback attempts.

A task is shown through `task_view`, the shape `/portal/v1/tasks` answers with (no channel,
no upstream job id), and its results through the same signed URLs. A task id of another
org is answered exactly like an unknown one: 404.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from domain.callbacks import repository as callbacks_repo
from domain.errors import InvalidField
from domain.results.signing import ResultSigner
from domain.tasks import service as tasks
from domain.tasks.views import task_view
from schema.tasks import TASK_STATUSES

PAGE_SIZE = 50
PREVIEW_TAGS = {"image": "img", "audio": "audio", "video": "video"}


@dataclass(frozen=True)
class CallbackLine:
    event: str
    attempt: int
    outcome: str
    http_status: int | None
    latency_ms: int
    error: str | None
    created_at: Any


@dataclass(frozen=True)
class TaskList:
    status: str
    rows: list[dict[str, Any]]
    next_cursor: str | None
    first_page: bool


@dataclass(frozen=True)
class TaskDetail:
    task: dict[str, Any]
    preview_tag: str  # img | audio | video
    callbacks: list[CallbackLine]

    @property
    def urls(self) -> list[str]:
        result = self.task.get("result") or {}
        return list(result.get("urls") or [])

    @property
    def error_text(self) -> str | None:
        error = self.task.get("error")
        if not error:
            return None
        if isinstance(error, dict):
            return str(error.get("message") or error.get("code") or "The task failed.")
        return str(error)


async def task_list(
    session: AsyncSession,
    org_id: uuid.UUID,
    *,
    status: str,
    cursor: str | None,
    base_url: str,
    signer: ResultSigner | None,
) -> TaskList:
    if status and status not in TASK_STATUSES:
        raise InvalidField(f"status must be one of {', '.join(TASK_STATUSES)}", param="status")
    page, next_cursor = await tasks.list_tasks(
        session, org_id, status=status or None, cursor=cursor, limit=PAGE_SIZE
    )
    rows = [task_view(t, base_url=base_url, signer=signer) for t in page]
    return TaskList(status, rows, next_cursor, cursor is None)


async def task_detail(
    session: AsyncSession,
    org_id: uuid.UUID,
    task_id: uuid.UUID,
    *,
    base_url: str,
    signer: ResultSigner | None,
) -> TaskDetail:
    task = await tasks.get_task(session, org_id, task_id)
    attempts = await callbacks_repo.list_attempts(session, org_id, task.id)
    return TaskDetail(
        task=task_view(task, base_url=base_url, signer=signer),
        preview_tag=PREVIEW_TAGS.get(task.type, "img"),
        callbacks=[
            CallbackLine(
                a.event, a.attempt, a.outcome, a.http_status, a.latency_ms, a.error, a.created_at
            )
            for a in attempts
        ],
    )
