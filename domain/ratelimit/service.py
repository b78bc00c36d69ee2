"""Per-key requests-per-minute in PostgreSQL, so N API replicas enforce one limit together.

A fixed one-minute window keyed by the database clock (not each replica's): one upsert
that only increments while under the limit, so refused calls do not push the window
further over. Old windows are deleted by retention.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import NoReturn

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from domain.errors import DomainError

_HIT_SQL = """
    INSERT INTO rate_limit_windows AS w (api_key_id, window_start, count)
    VALUES ($1, date_trunc('minute', now()), 1)
    ON CONFLICT (api_key_id, window_start)
    DO UPDATE SET count = w.count + 1 WHERE w.count < $2
    RETURNING count, window_start
"""
_PEEK_SQL = "SELECT date_trunc('minute', now()) AS window_start"
_HIT = text(_HIT_SQL.replace("$1", ":key").replace("$2", ":limit"))
_PEEK = text(_PEEK_SQL)


class RateLimited(DomainError):
    code = "rate_limit_exceeded"


@dataclass(frozen=True)
class RateDecision:
    limit: int
    remaining: int
    reset_at: datetime

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(int(self.reset_at.timestamp())),
        }


async def hit(
    session: AsyncSession | AsyncConnection, key_id: uuid.UUID, limit: int
) -> RateDecision:
    """Count one request against the key's current window, or raise `rate_limit_exceeded`.

    One statement, so callers on the hot path run it on an autocommit connection: no
    BEGIN/COMMIT round trips around it."""
    row = (await session.execute(_HIT, {"key": key_id, "limit": limit})).first()
    if row is not None:
        return _counted(limit, int(row[0]), row[1])
    return _refused(limit, (await session.execute(_PEEK)).scalar_one())


async def hit_autocommit(engine: AsyncEngine, key_id: uuid.UUID, limit: int) -> RateDecision:
    """`hit` for the relay's hot path: the same statement, outside any transaction.

    It runs straight on the pooled asyncpg connection: through SQLAlchemy an autocommit
    connection costs about 0.4 ms of CPU for this one statement, directly about 0.15 ms."""
    async with engine.connect() as conn:
        driver = (await conn.get_raw_connection()).driver_connection
        assert driver is not None, "a checked-out connection has its driver connection"
        row = await driver.fetchrow(_HIT_SQL, key_id, limit)
        if row is not None:
            return _counted(limit, int(row[0]), row[1])
        return _refused(limit, await driver.fetchval(_PEEK_SQL))


def _counted(limit: int, count: int, window_start: datetime) -> RateDecision:
    reset = _as_utc(window_start) + timedelta(minutes=1)
    return RateDecision(limit=limit, remaining=max(0, limit - count), reset_at=reset)


def _refused(limit: int, window: datetime) -> NoReturn:
    reset = _as_utc(window) + timedelta(minutes=1)
    decision = RateDecision(limit=limit, remaining=0, reset_at=reset)
    retry = max(1, int((reset - datetime.now(UTC)).total_seconds() + 0.999))
    raise RateLimited(
        f"rate limit of {limit} requests per minute reached for this key; retry after {retry}s",
        headers={**decision.headers(), "Retry-After": str(retry)},
    )


def _as_utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
