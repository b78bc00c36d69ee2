"""SQL for request logs, their attempts and (opt-in) content details."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from schema.base import table_of
from schema.requests import RequestAttempt, RequestDetail, RequestLog

LOGS = table_of(RequestLog)
ATTEMPTS = table_of(RequestAttempt)
DETAILS = table_of(RequestDetail)


async def insert_log(
    session: AsyncSession,
    log: dict[str, Any],
    attempts: list[dict[str, Any]],
    detail: dict[str, Any] | None,
) -> None:
    await session.execute(insert(LOGS).values(**log))
    if attempts:
        await session.execute(insert(ATTEMPTS), attempts)
    if detail is not None:
        await session.execute(insert(DETAILS).values(**detail))


async def get_log(session: AsyncSession, org_id: uuid.UUID, request_id: str) -> RequestLog | None:
    stmt = select(RequestLog).where(LOGS.c.id == request_id, LOGS.c.org_id == org_id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def attempts_of(session: AsyncSession, request_id: str) -> list[RequestAttempt]:
    stmt = select(RequestAttempt).where(ATTEMPTS.c.request_id == request_id).order_by(ATTEMPTS.c.id)
    return list((await session.execute(stmt)).scalars())
