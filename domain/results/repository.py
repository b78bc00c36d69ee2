"""SQL for `task_results`, the record of what the result store holds for each task.

Retention spans tenants by nature (one nightly run covers every org), so its query is scoped by
join: each row is matched to its own org's retention window.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from schema.base import table_of
from schema.results import TaskResult

results = table_of(TaskResult)
ERROR_LIMIT = 500


def object_key(task_id: uuid.UUID, index: int) -> str:
    """Deterministic, so a retried copy writes over its own earlier try, never beside it."""
    return f"tasks/{task_id}/{index}"


async def for_task(session: AsyncSession, task_id: uuid.UUID) -> list[TaskResult]:
    stmt = select(TaskResult).where(results.c.task_id == task_id).order_by(results.c.idx)
    return list((await session.execute(stmt)).scalars())


async def stored_indexes(session: AsyncSession, task_id: uuid.UUID) -> dict[int, TaskResult]:
    return {r.idx: r for r in await for_task(session, task_id) if r.state == "stored"}


async def record_stored(
    session: AsyncSession,
    *,
    task_id: uuid.UUID,
    org_id: uuid.UUID,
    index: int,
    content_type: str,
    size: int,
) -> None:
    values = {
        "task_id": task_id,
        "org_id": org_id,
        "idx": index,
        "state": "stored",
        "object_key": object_key(task_id, index),
        "content_type": content_type[:200],
        "size_bytes": size,
        "error": None,
        "stored_at": text("now()"),
    }
    stmt = insert(results).values(values)
    update = {k: stmt.excluded[k] for k in ("state", "content_type", "size_bytes", "error")}
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["task_id", "idx"], set_=update | {"stored_at": text("now()")}
        )
    )


async def record_failure(
    session: AsyncSession, *, task_id: uuid.UUID, org_id: uuid.UUID, index: int, error: str
) -> None:
    """The copy of result `index` gave up; a result already stored stays stored."""
    stmt = insert(results).values(
        task_id=task_id,
        org_id=org_id,
        idx=index,
        state="failed",
        object_key=object_key(task_id, index),
        error=error[:ERROR_LIMIT],
    )
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["task_id", "idx"],
            set_={"state": "failed", "error": stmt.excluded.error},
            where=results.c.state != "stored",
        )
    )


_EXPIRED = text(
    """
    SELECT r.task_id, r.idx, r.object_key
    FROM task_results r JOIN orgs o ON o.id = r.org_id
    WHERE r.state = 'stored'
      AND r.stored_at < CAST(:now AS timestamptz) - make_interval(days => o.retention_days)
    ORDER BY r.stored_at
    LIMIT :limit
    FOR UPDATE OF r SKIP LOCKED
    """
)


async def expired(
    session: AsyncSession, now: datetime, *, limit: int
) -> list[tuple[uuid.UUID, int, str]]:
    """Stored objects past their org's retention window, locked for this transaction."""
    rows = (await session.execute(_EXPIRED, {"now": now, "limit": limit})).all()
    return [(r[0], int(r[1]), str(r[2])) for r in rows]


_MARK_DELETED = text(
    """
    UPDATE task_results SET state = 'deleted', deleted_at = now()
    WHERE (task_id, idx) IN (SELECT * FROM unnest(CAST(:tasks AS uuid[]), CAST(:idx AS int[])))
    """
)
# What the task row keeps once its stored results are gone: no URLs (they pointed at the
# deleted objects or at the provider's long-expired copies), no inline bytes.
_FORGET_RESULTS = text(
    """
    UPDATE tasks SET updated_at = now(),
        result = (result - 'urls' - 'content_b64' - 'stored')
                 || jsonb_build_object('urls', '[]'::jsonb, 'deleted_at', to_jsonb(now()))
    WHERE id = ANY(CAST(:tasks AS uuid[])) AND result IS NOT NULL
    """
)


async def mark_deleted(session: AsyncSession, rows: Sequence[tuple[uuid.UUID, int]]) -> None:
    if not rows:
        return
    tasks = [r[0] for r in rows]
    await session.execute(_MARK_DELETED, {"tasks": tasks, "idx": [r[1] for r in rows]})
    await session.execute(_FORGET_RESULTS, {"tasks": sorted(set(tasks))})


_FAILURES = text("SELECT count(*) FROM task_results WHERE state = 'failed'")


async def copy_failures(session: AsyncSession) -> int:
    """Results whose copy gave up, ever; rare accidents, so counting the rows stays cheap."""
    return int((await session.execute(_FAILURES)).scalar_one())
