"""SQL for the audit trail: insert-only, and every read is filtered by org."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from schema.audit import AuditEvent
from schema.base import table_of

T = table_of(AuditEvent)


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
) -> list[AuditEvent]:
    stmt = select(AuditEvent).where(T.c.org_id == org_id)
    if before_id is not None:
        stmt = stmt.where(T.c.id < before_id)
    if action:
        stmt = stmt.where(T.c.action == action)
    if target_type:
        stmt = stmt.where(T.c.target_type == target_type)
    if since:
        stmt = stmt.where(T.c.created_at >= since)
    if until:
        stmt = stmt.where(T.c.created_at < until)
    rows = await session.execute(stmt.order_by(T.c.id.desc()).limit(limit))
    return list(rows.scalars())
