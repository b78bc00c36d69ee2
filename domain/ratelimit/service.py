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

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from domain.errors import DomainError
from domain.ratelimit import repository as repo
from schema.direct import DirectPool


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

    The relay's hot path uses `hit_direct` instead (the same statement, outside any
    transaction)."""
    hit = await repo.hit(session, key_id, limit)
    if hit is not None:
        return counted(limit, hit.count, hit.window_start)
    return refused(limit, await repo.current_window(session))


async def hit_direct(direct: DirectPool, key_id: uuid.UUID, limit: int) -> RateDecision:
    """`hit` for the relay's hot path: the same statement on the direct pool, outside any
    transaction (see `schema.direct`)."""
    hit = await repo.hit_direct(direct, key_id, limit)
    if hit is not None:
        return counted(limit, hit.count, hit.window_start)
    return refused(limit, await repo.current_window_direct(direct))


def counted(limit: int, count: int, window_start: datetime) -> RateDecision:
    reset = _as_utc(window_start) + timedelta(minutes=1)
    return RateDecision(limit=limit, remaining=max(0, limit - count), reset_at=reset)


def refused(limit: int, window: datetime) -> NoReturn:
    reset = _as_utc(window) + timedelta(minutes=1)
    decision = RateDecision(limit=limit, remaining=0, reset_at=reset)
    retry = max(1, int((reset - datetime.now(UTC)).total_seconds() + 0.999))
    raise RateLimited(
        f"rate limit of {limit} requests per minute reached for this key; retry after {retry}s",
        headers={**decision.headers(), "Retry-After": str(retry)},
    )


def _as_utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
