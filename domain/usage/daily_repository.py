"""SQL for the daily usage rollup (`usage_daily`): writing buckets from the raw logs and
reading them back beside the raw logs of the days not rolled (every read is org-filtered)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, String, cast, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.usage.models import GroupBy, UsageRow
from domain.usage.rollup_repository import rollup_statement
from schema.base import table_of
from schema.payments import UsageDaily

DAILY = table_of(UsageDaily)


async def rolled_days(
    session: AsyncSession, org_id: uuid.UUID, candidates: Sequence[datetime]
) -> list[datetime]:
    """Which of these UTC days have rollup rows for the org (one index range read)."""
    if not candidates:
        return []
    wanted = set(candidates)
    stmt = (
        select(DAILY.c.day)
        .where(
            DAILY.c.org_id == org_id,
            DAILY.c.day >= min(candidates),
            DAILY.c.day <= max(candidates),
        )
        .distinct()
    )
    return sorted(d for d in (await session.execute(stmt)).scalars() if d in wanted)


def _group_expr(group_by: GroupBy) -> ColumnElement[Any]:
    if group_by == "model":
        return DAILY.c.model
    if group_by == "key":
        return cast(DAILY.c.api_key_id, String)
    if group_by == "month":
        month = func.date_trunc("month", DAILY.c.day, "UTC")
        return func.to_char(func.timezone("UTC", month), "YYYY-MM")
    if group_by == "day":
        return func.to_char(func.timezone("UTC", DAILY.c.day), "YYYY-MM-DD")
    return literal(None, String)


async def totals_from_days(
    session: AsyncSession, org_id: uuid.UUID, days: Sequence[datetime], group_by: GroupBy
) -> list[UsageRow]:
    if not days:
        return []
    key = _group_expr(group_by).label("k")
    stmt = (
        select(
            key,
            func.coalesce(func.sum(DAILY.c.requests), 0),
            func.coalesce(func.sum(DAILY.c.failed_requests), 0),
            func.coalesce(func.sum(DAILY.c.prompt_tokens), 0),
            func.coalesce(func.sum(DAILY.c.completion_tokens), 0),
            func.coalesce(func.sum(DAILY.c.cost_micros), 0),
            func.coalesce(func.sum(DAILY.c.byok_requests), 0),
        )
        .where(DAILY.c.org_id == org_id, DAILY.c.day.in_(list(days)))
        .group_by(key)
    )
    return [
        UsageRow(r[0], int(r[1]), int(r[2]), int(r[3]), int(r[4]), int(r[5]), int(r[6]))
        for r in await session.execute(stmt)
    ]


async def cost_by_day_and_model(
    session: AsyncSession, org_id: uuid.UUID, days: Sequence[datetime]
) -> list[tuple[str, str, int, int]]:
    if not days:
        return []
    day = func.to_char(func.timezone("UTC", DAILY.c.day), "YYYY-MM-DD").label("d")
    stmt = (
        select(
            day,
            DAILY.c.model,
            func.coalesce(func.sum(DAILY.c.cost_micros), 0),
            func.coalesce(func.sum(DAILY.c.requests), 0),
        )
        .where(DAILY.c.org_id == org_id, DAILY.c.day.in_(list(days)))
        .group_by(day, DAILY.c.model)
    )
    return [(r[0], r[1], int(r[2]), int(r[3])) for r in await session.execute(stmt)]


_ROLLUP_DAYS = rollup_statement(
    table="usage_daily", bucket="day", conflict="org_id, day, api_key_id, model"
)


async def rollup_days(
    session: AsyncSession, org_ids: Sequence[uuid.UUID], *, start: datetime, end: datetime
) -> int:
    """Recompute every (org, UTC day, key, model) bucket of these orgs in [start, end);
    returns buckets written. Recompute-not-add, like the monthly rollup
    (`domain.usage.repository.rollup_orgs`): running it twice never counts a call twice."""
    if not org_ids or start >= end:
        return 0
    params = {"org_ids": list(org_ids), "start": start, "end": end}
    return int((await session.execute(_ROLLUP_DAYS, params)).scalar_one())
