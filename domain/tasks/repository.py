"""SQL for media tasks. Status changes are compare-and-set: a task's terminal state is
written once, whichever of the workflow, a retry or a cancel gets there first."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from schema.base import table_of
from schema.tasks import Task

T = table_of(Task)
TERMINAL = ("succeeded", "failed", "canceled")


async def insert_task(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(insert(T).values(**values))


async def get_for_org(session: AsyncSession, org_id: uuid.UUID, task_id: uuid.UUID) -> Task | None:
    stmt = (
        select(Task)
        .where(T.c.id == task_id, T.c.org_id == org_id)
        .execution_options(populate_existing=True)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def get(session: AsyncSession, task_id: uuid.UUID, *, lock: bool = False) -> Task | None:
    """Unscoped read for the task's own workflow, which acts for whichever org owns it."""
    stmt = select(Task).where(T.c.id == task_id).execution_options(populate_existing=True)
    if lock:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def by_idempotency_key(session: AsyncSession, org_id: uuid.UUID, key: str) -> Task | None:
    stmt = select(Task).where(T.c.org_id == org_id, T.c.idempotency_key == key)
    return (await session.execute(stmt)).scalar_one_or_none()


async def list_for_org(
    session: AsyncSession,
    org_id: uuid.UUID,
    *,
    status: str | None,
    before: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[Task]:
    stmt = select(Task).where(T.c.org_id == org_id)
    if status:
        stmt = stmt.where(T.c.status == status)
    if before is not None:
        created, task_id = before
        stmt = stmt.where(
            (T.c.created_at < created) | ((T.c.created_at == created) & (T.c.id < task_id))
        )
    rows = await session.execute(stmt.order_by(T.c.created_at.desc(), T.c.id.desc()).limit(limit))
    return list(rows.scalars())


async def compare_and_set(
    session: AsyncSession,
    task_id: uuid.UUID,
    from_statuses: tuple[str, ...],
    values: dict[str, Any],
) -> bool:
    stmt = (
        update(T)
        .where(T.c.id == task_id, T.c.status.in_(from_statuses))
        .values(**values, updated_at=text("now()"))
        .returning(T.c.id)
    )
    return (await session.execute(stmt)).first() is not None


async def set_fields(session: AsyncSession, task_id: uuid.UUID, values: dict[str, Any]) -> None:
    await session.execute(
        update(T).where(T.c.id == task_id).values(**values, updated_at=text("now()"))
    )


async def stale_pending(session: AsyncSession, older_than: datetime, limit: int) -> list[Task]:
    """Tasks still `pending` well after creation: their workflow may never have started."""
    stmt = (
        select(Task)
        .where(T.c.status == "pending", T.c.created_at < older_than)
        .order_by(T.c.created_at)
        .limit(limit)
    )
    return list((await session.execute(stmt)).scalars())
