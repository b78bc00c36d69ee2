"""SQL for media tasks. Status changes are compare-and-set: a task's terminal state is
written once, whichever of the workflow, a retry or a cancel gets there first."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from schema.base import table_of
from schema.tasks import Task, TaskOrphanJob, TaskSubmission

T = table_of(Task)
TERMINAL = ("succeeded", "failed", "canceled")
NOW = text("now()")  # the database's clock, as a value for the update functions below


async def insert_task(session: AsyncSession, values: dict[str, Any]) -> Task:
    """The new row as written (its defaults filled in), without reading it back."""
    stmt = insert(Task).values(**values).returning(Task)
    return (await session.execute(stmt)).scalar_one()


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


# --- what was sent upstream for a task (task_submissions) and what it left (task_orphan_jobs)

SUBS = table_of(TaskSubmission)
ORPHANS = table_of(TaskOrphanJob)


async def next_attempt(session: AsyncSession, task_id: uuid.UUID) -> int:
    """Callers hold the task's row lock, so two attempts never draw the same number."""
    stmt = select(func.coalesce(func.max(SUBS.c.attempt), 0)).where(SUBS.c.task_id == task_id)
    return int((await session.execute(stmt)).scalar_one()) + 1


async def insert_submission(session: AsyncSession, values: dict[str, Any]) -> TaskSubmission:
    row = (await session.execute(insert(SUBS).values(**values).returning(SUBS.c.id))).scalar_one()
    found = await get_submission(session, int(row))
    assert found is not None
    return found


async def get_submission(session: AsyncSession, submission_id: int) -> TaskSubmission | None:
    stmt = (
        select(TaskSubmission)
        .where(SUBS.c.id == submission_id)
        .execution_options(populate_existing=True)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def submissions(
    session: AsyncSession, task_id: uuid.UUID, *, states: tuple[str, ...] | None = None
) -> list[TaskSubmission]:
    stmt = select(TaskSubmission).where(SUBS.c.task_id == task_id)
    if states is not None:
        stmt = stmt.where(SUBS.c.state.in_(states))
    stmt = stmt.order_by(SUBS.c.attempt).execution_options(populate_existing=True)
    return list((await session.execute(stmt)).scalars())


async def accepted_submission(session: AsyncSession, task_id: uuid.UUID) -> TaskSubmission | None:
    stmt = (
        select(TaskSubmission)
        .where(SUBS.c.task_id == task_id, SUBS.c.state == "accepted")
        .execution_options(populate_existing=True)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def update_submission(
    session: AsyncSession,
    submission_id: int,
    values: dict[str, Any],
    *,
    from_states: tuple[str, ...] | None = None,
) -> bool:
    stmt = update(SUBS).where(SUBS.c.id == submission_id)
    if from_states is not None:
        stmt = stmt.where(SUBS.c.state.in_(from_states))
    return (await session.execute(stmt.values(**values).returning(SUBS.c.id))).first() is not None


async def count_send(session: AsyncSession, submission_id: int) -> None:
    await session.execute(
        update(SUBS)
        .where(SUBS.c.id == submission_id)
        .values(sends=SUBS.c.sends + 1, last_sent_at=text("now()"))
    )


async def clear_submission_outcomes(session: AsyncSession, task_id: uuid.UUID) -> None:
    """A settled task holds its result itself; the attempt's copy is no longer needed."""
    await session.execute(
        update(SUBS)
        .where(SUBS.c.task_id == task_id, SUBS.c.outcome.is_not(None))
        .values(outcome=None)
    )


async def insert_orphan(session: AsyncSession, values: dict[str, Any]) -> TaskOrphanJob | None:
    """None when the job is already known as an orphan of this task."""
    stmt = (
        pg_insert(ORPHANS)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[ORPHANS.c.task_id, ORPHANS.c.upstream_job_id])
        .returning(ORPHANS.c.id)
    )
    row = (await session.execute(stmt)).scalar_one_or_none()
    if row is None:
        return None
    found = await session.execute(
        select(TaskOrphanJob).where(ORPHANS.c.id == row).execution_options(populate_existing=True)
    )
    return found.scalar_one()


async def orphans(
    session: AsyncSession, task_id: uuid.UUID, *, states: tuple[str, ...] | None = None
) -> list[TaskOrphanJob]:
    stmt = select(TaskOrphanJob).where(ORPHANS.c.task_id == task_id)
    if states is not None:
        stmt = stmt.where(ORPHANS.c.state.in_(states))
    stmt = stmt.order_by(ORPHANS.c.id).execution_options(populate_existing=True)
    return list((await session.execute(stmt)).scalars())


async def update_orphan(session: AsyncSession, orphan_id: int, values: dict[str, Any]) -> None:
    await session.execute(update(ORPHANS).where(ORPHANS.c.id == orphan_id).values(**values))
