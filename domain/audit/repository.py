"""SQL for the audit trail: insert-only, and every read is filtered by org."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from schema.audit import AuditEvent
from schema.base import table_of
from schema.identity import User

T = table_of(AuditEvent)
U = table_of(User)


async def insert_event(session: AsyncSession, values: dict[str, Any]) -> int:
    result = await session.execute(insert(T).values(**values).returning(T.c.id))
    return int(result.scalar_one())


async def list_events(
    session: AsyncSession,
    org_id: uuid.UUID,
    *,
    before_id: int | None,
    limit: int,
    action: str | None = None,
    target_type: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    actor_user_id: uuid.UUID | None = None,
    target_id: str | None = None,
) -> list[AuditEvent]:
    stmt = select(AuditEvent).where(T.c.org_id == org_id)
    if before_id is not None:
        stmt = stmt.where(T.c.id < before_id)
    if action:
        stmt = stmt.where(T.c.action == action)
    if target_type:
        stmt = stmt.where(T.c.target_type == target_type)
    if actor_user_id:
        stmt = stmt.where(T.c.actor_user_id == actor_user_id)
    if target_id:
        stmt = stmt.where(T.c.target_id == target_id)
    if since:
        stmt = stmt.where(T.c.created_at >= since)
    if until:
        stmt = stmt.where(T.c.created_at < until)
    rows = await session.execute(stmt.order_by(T.c.id.desc()).limit(limit))
    return list(rows.scalars())


async def emails_of(session: AsyncSession, user_ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    """Who the actors of a page of events are, for people reading the trail."""
    if not user_ids:
        return {}
    rows = await session.execute(select(U.c.id, U.c.email).where(U.c.id.in_(user_ids)))
    return {user_id: email for user_id, email in rows.all()}


async def distinct_actions(session: AsyncSession, org_id: uuid.UUID) -> list[str]:
    stmt = select(T.c.action).where(T.c.org_id == org_id).distinct().order_by(T.c.action)
    return list((await session.execute(stmt)).scalars())
