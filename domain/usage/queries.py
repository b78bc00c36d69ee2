"""Read-only SQL behind the developer portal's usage pages; every statement is org-filtered.

Totals come from two sources that must agree: raw `request_logs` and the `usage_monthly`
rollups. A month is read from its rollup only when it is closed, lies wholly inside the
asked range and the org has rollup rows for it; everything else (the open month, partial
months at either end of the range, months never rolled) is summed from the raw logs. The
rollup is a recomputation of exactly those logs, so either source yields the same integers,
and usage stays right even where raw rows become unavailable. Per-day grouping needs the
raw rows (a rollup has no days), so `day` always reads logs.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, String, and_, cast, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.errors import InvalidRequest
from schema.base import table_of
from schema.payments import UsageMonthly
from schema.requests import RequestLog

LOGS = table_of(RequestLog)
MONTHLY = table_of(UsageMonthly)

GroupBy = Literal["none", "day", "month", "model", "key"]
MAX_RANGE_DAYS = 3660


@dataclass
class UsageRow:
    """One group's exact integer totals."""

    key: str | None
    requests: int = 0
    failed_requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_micros: int = 0
    byok_requests: int = 0

    def add(self, other: UsageRow) -> None:
        self.requests += other.requests
        self.failed_requests += other.failed_requests
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.cost_micros += other.cost_micros
        self.byok_requests += other.byok_requests


@dataclass
class UsageSummary:
    start: datetime
    end: datetime
    group_by: GroupBy
    rollup_months: list[datetime]
    total: UsageRow
    groups: list[UsageRow] = field(default_factory=list)


def _month_start(at: datetime) -> datetime:
    at = at.astimezone(UTC)
    return datetime(at.year, at.month, 1, tzinfo=UTC)


def _next_month(month: datetime) -> datetime:
    if month.month == 12:
        return datetime(month.year + 1, 1, 1, tzinfo=UTC)
    return datetime(month.year, month.month + 1, 1, tzinfo=UTC)


def closed_months_within(start: datetime, end: datetime, now: datetime) -> list[datetime]:
    """Months wholly inside [start, end) that ended before `now`'s month began."""
    months: list[datetime] = []
    month = _month_start(start)
    if month < start:
        month = _next_month(month)
    open_month = _month_start(now)
    while _next_month(month) <= end and month < open_month:
        months.append(month)
        month = _next_month(month)
    return months


async def _rolled_months(
    session: AsyncSession, org_id: uuid.UUID, candidates: Sequence[datetime]
) -> list[datetime]:
    if not candidates:
        return []
    stmt = (
        select(MONTHLY.c.month)
        .where(MONTHLY.c.org_id == org_id, MONTHLY.c.month.in_(list(candidates)))
        .distinct()
    )
    return sorted((await session.execute(stmt)).scalars())


def _group_expr(group_by: GroupBy, *, raw: bool) -> ColumnElement[Any]:
    t = LOGS if raw else MONTHLY
    if group_by == "model":
        return t.c.model
    if group_by == "key":
        return cast(t.c.api_key_id, String)
    if group_by == "month":
        col = func.date_trunc("month", LOGS.c.created_at, "UTC") if raw else MONTHLY.c.month
        return func.to_char(func.timezone("UTC", col), "YYYY-MM")
    if group_by == "day":
        return func.to_char(func.timezone("UTC", LOGS.c.created_at), "YYYY-MM-DD")
    return literal(None, String)


def _rows(result: Any) -> list[UsageRow]:
    return [
        UsageRow(
            key=r[0],
            requests=int(r[1]),
            failed_requests=int(r[2]),
            prompt_tokens=int(r[3]),
            completion_tokens=int(r[4]),
            cost_micros=int(r[5]),
            byok_requests=int(r[6]),
        )
        for r in result
    ]


async def _raw(
    session: AsyncSession,
    org_id: uuid.UUID,
    start: datetime,
    end: datetime,
    skip_months: Sequence[datetime],
    group_by: GroupBy,
) -> list[UsageRow]:
    key = _group_expr(group_by, raw=True).label("k")
    cond = and_(LOGS.c.org_id == org_id, LOGS.c.created_at >= start, LOGS.c.created_at < end)
    if skip_months:
        # Whole months served by rollups, excluded as time ranges so the index still applies.
        cond = and_(
            cond,
            *[or_(LOGS.c.created_at < m, LOGS.c.created_at >= _next_month(m)) for m in skip_months],
        )
    stmt = (
        select(
            key,
            func.count(),
            func.count().filter(LOGS.c.status == "failed"),
            func.coalesce(func.sum(LOGS.c.prompt_tokens), 0),
            func.coalesce(func.sum(LOGS.c.completion_tokens), 0),
            func.coalesce(func.sum(LOGS.c.cost_micros), 0),
            func.count().filter(LOGS.c.billing == "byok"),
        )
        .where(cond)
        .group_by(key)
    )
    return _rows(await session.execute(stmt))


async def _rolled(
    session: AsyncSession, org_id: uuid.UUID, months: Sequence[datetime], group_by: GroupBy
) -> list[UsageRow]:
    if not months:
        return []
    key = _group_expr(group_by, raw=False).label("k")
    stmt = (
        select(
            key,
            func.coalesce(func.sum(MONTHLY.c.requests), 0),
            func.coalesce(func.sum(MONTHLY.c.failed_requests), 0),
            func.coalesce(func.sum(MONTHLY.c.prompt_tokens), 0),
            func.coalesce(func.sum(MONTHLY.c.completion_tokens), 0),
            func.coalesce(func.sum(MONTHLY.c.cost_micros), 0),
            func.coalesce(func.sum(MONTHLY.c.byok_requests), 0),
        )
        .where(MONTHLY.c.org_id == org_id, MONTHLY.c.month.in_(list(months)))
        .group_by(key)
    )
    return _rows(await session.execute(stmt))


async def usage_summary(
    session: AsyncSession,
    org_id: uuid.UUID,
    *,
    start: datetime,
    end: datetime,
    group_by: GroupBy,
    now: datetime | None = None,
) -> UsageSummary:
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidRequest("timestamps must carry a timezone", param="from")
    if start >= end:
        raise InvalidRequest("`from` must be before `to`", param="from")
    if (end - start).days > MAX_RANGE_DAYS:
        raise InvalidRequest(f"the range may span at most {MAX_RANGE_DAYS} days", param="from")
    now = now or datetime.now(UTC)
    months: list[datetime] = []
    if group_by != "day":
        months = await _rolled_months(session, org_id, closed_months_within(start, end, now))
    parts = await _raw(session, org_id, start, end, months, group_by)
    parts += await _rolled(session, org_id, months, group_by)
    merged: dict[str | None, UsageRow] = {}
    total = UsageRow(key=None)
    for part in parts:
        merged.setdefault(part.key, UsageRow(key=part.key)).add(part)
        total.add(part)
    groups = [] if group_by == "none" else sorted(merged.values(), key=lambda r: r.key or "")
    return UsageSummary(start, end, group_by, months, total, groups)


async def list_logs(
    session: AsyncSession,
    org_id: uuid.UUID,
    *,
    before: tuple[datetime, str] | None,
    limit: int,
    status: str | None,
    model: str | None,
) -> list[RequestLog]:
    """Newest first, keyset-paginated on (created_at, id) over the org's index."""
    stmt = select(RequestLog).where(LOGS.c.org_id == org_id)
    if status:
        stmt = stmt.where(LOGS.c.status == status)
    if model:
        stmt = stmt.where(LOGS.c.model == model)
    if before is not None:
        created, request_id = before
        stmt = stmt.where(
            or_(
                LOGS.c.created_at < created,
                and_(LOGS.c.created_at == created, LOGS.c.id < request_id),
            )
        )
    stmt = stmt.order_by(LOGS.c.created_at.desc(), LOGS.c.id.desc()).limit(limit)
    return list((await session.execute(stmt)).scalars())
