"""SQL for platform API keys; every read and write names the org it belongs to."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from schema.base import table_of
from schema.keys import ApiKey

K = table_of(ApiKey)


async def insert_key(session: AsyncSession, **values: Any) -> ApiKey:
    key_id = uuid.uuid4()
    await session.execute(insert(K).values(id=key_id, **values))
    found = await get_key(session, values["org_id"], key_id)
    assert found is not None
    return found


async def get_key(
    session: AsyncSession, org_id: uuid.UUID, key_id: uuid.UUID, *, fresh: bool = False
) -> ApiKey | None:
    stmt = select(ApiKey).where(K.c.id == key_id, K.c.org_id == org_id)
    if fresh:  # reload an instance this session already holds, after a Core UPDATE
        stmt = stmt.execution_options(populate_existing=True)
    return (await session.execute(stmt)).scalar_one_or_none()


async def list_keys(
    session: AsyncSession,
    org_id: uuid.UUID,
    *,
    created_by: uuid.UUID | None = None,
    include_revoked: bool = True,
) -> list[ApiKey]:
    stmt = select(ApiKey).where(K.c.org_id == org_id)
    if created_by is not None:
        stmt = stmt.where(K.c.created_by == created_by)
    if not include_revoked:
        stmt = stmt.where(K.c.revoked_at.is_(None))
    rows = await session.execute(stmt.order_by(K.c.created_at.desc(), K.c.id))
    return list(rows.scalars())


async def update_key(
    session: AsyncSession, org_id: uuid.UUID, key_id: uuid.UUID, values: dict[str, Any]
) -> ApiKey | None:
    stmt = (
        update(K)
        .where(K.c.id == key_id, K.c.org_id == org_id, K.c.revoked_at.is_(None))
        .values(**values)
        .returning(K.c.id)
    )
    if (await session.execute(stmt)).first() is None:
        return None
    return await get_key(session, org_id, key_id, fresh=True)


async def by_hash(session: AsyncSession, key_hash: bytes) -> ApiKey | None:
    return (
        await session.execute(select(ApiKey).where(K.c.key_hash == key_hash))
    ).scalar_one_or_none()


async def touch_last_used(
    session: AsyncSession, key_id: uuid.UUID, now: datetime, resolution_s: int
) -> None:
    """Write last_used_at only when the stored value is older than the resolution."""
    stale = now - timedelta(seconds=resolution_s)
    await session.execute(
        update(K)
        .where(and_(K.c.id == key_id, or_(K.c.last_used_at.is_(None), K.c.last_used_at < stale)))
        .values(last_used_at=now)
    )


async def org_has_keys(session: AsyncSession, org_id: uuid.UUID) -> bool:
    """Whether the org ever created a key (revoked ones count: the step was done)."""
    stmt = select(exists().where(K.c.org_id == org_id))
    return bool((await session.execute(stmt)).scalar_one())
