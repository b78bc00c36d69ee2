"""SQL for webhook secrets and callback attempts; every read is filtered by org."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from schema.base import table_of
from schema.tasks import CallbackAttempt, WebhookSecret

S = table_of(WebhookSecret)
A = table_of(CallbackAttempt)


async def get_secret(session: AsyncSession, org_id: uuid.UUID) -> WebhookSecret | None:
    """Always the stored row, even after a Core write in the same session changed it."""
    stmt = (
        select(WebhookSecret).where(S.c.org_id == org_id).execution_options(populate_existing=True)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def insert_secret_if_absent(
    session: AsyncSession, org_id: uuid.UUID, ciphertext: str
) -> bool:
    """True when this call created the row; a concurrent first read loses quietly."""
    stmt = (
        pg_insert(S)
        .values(org_id=org_id, secret_ciphertext=ciphertext)
        .on_conflict_do_nothing(index_elements=[S.c.org_id])
        .returning(S.c.org_id)
    )
    return (await session.execute(stmt)).first() is not None


async def replace_secret(session: AsyncSession, org_id: uuid.UUID, ciphertext: str) -> None:
    """Set a new secret (creating the row if the org never had one) and stamp `rotated_at`."""
    stmt = (
        pg_insert(S)
        .values(org_id=org_id, secret_ciphertext=ciphertext, rotated_at=func.now())
        .on_conflict_do_update(
            index_elements=[S.c.org_id],
            set_={"secret_ciphertext": ciphertext, "rotated_at": func.now()},
        )
    )
    await session.execute(stmt)


async def lock_secret(session: AsyncSession, org_id: uuid.UUID) -> WebhookSecret | None:
    """The row, locked, so two concurrent rotations audit a true before/after."""
    stmt = select(WebhookSecret).where(S.c.org_id == org_id).with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def ciphertext_batch(
    session: AsyncSession, after: uuid.UUID | None, limit: int
) -> list[tuple[uuid.UUID, str]]:
    """Every org's secret, by org id: only the secret-rotation command reads across tenants."""
    stmt = select(S.c.org_id, S.c.secret_ciphertext).order_by(S.c.org_id).limit(limit)
    if after is not None:
        stmt = stmt.where(S.c.org_id > after)
    return [(row[0], row[1]) for row in (await session.execute(stmt)).all()]


async def replace_ciphertext(session: AsyncSession, org_id: uuid.UUID, old: str, new: str) -> bool:
    """Compare-and-set re-encryption (same secret, new key): `rotated_at` is not touched."""
    stmt = (
        update(S)
        .where(S.c.org_id == org_id, S.c.secret_ciphertext == old)
        .values(secret_ciphertext=new)
        .returning(S.c.org_id)
    )
    return (await session.execute(stmt)).first() is not None


_ATTEMPT_KEY = [A.c.task_id, A.c.event, A.c.attempt]


async def insert_attempt(session: AsyncSession, values: dict[str, Any]) -> tuple[int, bool]:
    """Record one attempt: (its row id, whether this call wrote it).

    Each (task, event, attempt) is one row. A second run of the same attempt (a worker
    presumed dead that was not) leaves the first record as it is, unless the first did not
    deliver and this one did: a delivery is never lost from the record, since later attempts
    read it to avoid sending again."""
    stmt = pg_insert(A).values(**values)
    upsert = stmt.on_conflict_do_update(
        index_elements=_ATTEMPT_KEY,
        set_={c: stmt.excluded[c] for c in values if c not in ("task_id", "event", "attempt")},
        where=(A.c.outcome != "delivered") & (stmt.excluded.outcome == "delivered"),
    ).returning(A.c.id)
    row = (await session.execute(upsert)).first()
    if row is not None:
        return int(row[0]), True
    existing = select(A.c.id).where(
        A.c.task_id == values["task_id"],
        A.c.event == values["event"],
        A.c.attempt == values["attempt"],
    )
    return int((await session.execute(existing)).scalar_one()), False


async def delivered_status(
    session: AsyncSession, org_id: uuid.UUID, task_id: uuid.UUID, event: str
) -> tuple[bool, int | None]:
    """(already delivered?, its HTTP status): a repeated attempt must not send again."""
    stmt = (
        select(A.c.http_status)
        .where(
            A.c.org_id == org_id,
            A.c.task_id == task_id,
            A.c.event == event,
            A.c.outcome == "delivered",
        )
        .limit(1)
    )
    row = (await session.execute(stmt)).first()
    return (row is not None, row[0] if row is not None else None)


async def list_attempts(
    session: AsyncSession, org_id: uuid.UUID, task_id: uuid.UUID
) -> list[CallbackAttempt]:
    stmt = (
        select(CallbackAttempt).where(A.c.org_id == org_id, A.c.task_id == task_id).order_by(A.c.id)
    )
    return list((await session.execute(stmt)).scalars())
