"""SQL for the per-key requests-per-minute windows (`rate_limit_windows`).

Each statement runs on a session or connection (`hit`) or on the relay's direct pool
(`hit_direct`, outside any transaction; see `schema.direct`). The window is keyed by the
database clock, so N replicas count against one window.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, Uuid, bindparam, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from schema.direct import DirectPool

# One upsert that only increments while under the limit, so refused calls do not push the
# window further over. (`domain.relay.repository` also runs it inside its hit-and-reserve.)
HIT = text(
    """
    INSERT INTO rate_limit_windows AS w (api_key_id, window_start, count)
    VALUES (:key, date_trunc('minute', now()), 1)
    ON CONFLICT (api_key_id, window_start)
    DO UPDATE SET count = w.count + 1 WHERE w.count < :limit
    RETURNING count, window_start
    """
).bindparams(bindparam("key", type_=Uuid()), bindparam("limit", type_=Integer()))
PEEK = text("SELECT date_trunc('minute', now()) AS window_start")


@dataclass(frozen=True)
class Counted:
    """A call counted in its window: the window's count with it, and when the window began."""

    count: int
    window_start: datetime


async def hit(
    session: AsyncSession | AsyncConnection, key_id: uuid.UUID, limit: int
) -> Counted | None:
    """Count one call against the key's current window; None if the window is full."""
    return _counted((await session.execute(HIT, {"key": key_id, "limit": limit})).first())


async def current_window(session: AsyncSession | AsyncConnection) -> datetime:
    window: datetime = (await session.execute(PEEK)).scalar_one()
    return window


async def hit_direct(direct: DirectPool, key_id: uuid.UUID, limit: int) -> Counted | None:
    return _counted(await direct.fetchrow(HIT, {"key": key_id, "limit": limit}))


async def current_window_direct(direct: DirectPool) -> datetime:
    peek = await direct.fetchrow(PEEK, {})
    assert peek is not None
    window: datetime = peek[0]
    return window


def _counted(row: Any) -> Counted | None:
    return Counted(int(row[0]), row[1]) if row is not None else None
