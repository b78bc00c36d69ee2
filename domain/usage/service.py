"""The developer portal's usage totals, from the two sources that must agree.

Totals come from raw `request_logs` and the `usage_monthly` rollups. A month is read from
its rollup only when it is closed, lies wholly inside the asked range and the org has
rollup rows for it; everything else (the open month, partial months at either end of the
range, months never rolled) is summed from the raw logs. The rollup is a recomputation of
exactly those logs, so either source yields the same integers, and usage stays right even
where raw rows become unavailable. Per-day grouping needs the raw rows (a rollup has no
days), so `day` always reads logs.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from domain.billing_cycles.periods import add_months, month_start
from domain.errors import InvalidRequest
from domain.usage import repository as repo
from domain.usage.models import GroupBy, UsageRow, UsageSummary

MAX_RANGE_DAYS = 3660


def closed_months_within(start: datetime, end: datetime, now: datetime) -> list[datetime]:
    """Months wholly inside [start, end) that ended before `now`'s month began."""
    months: list[datetime] = []
    month = month_start(start)
    if month < start:
        month = add_months(month, 1)
    open_month = month_start(now)
    while add_months(month, 1) <= end and month < open_month:
        months.append(month)
        month = add_months(month, 1)
    return months


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
        months = await repo.rolled_months(session, org_id, closed_months_within(start, end, now))
    parts = await repo.totals_from_logs(session, org_id, start, end, months, group_by)
    parts += await repo.totals_from_rollups(session, org_id, months, group_by)
    merged: dict[str | None, UsageRow] = {}
    total = UsageRow(key=None)
    for part in parts:
        merged.setdefault(part.key, UsageRow(key=part.key)).add(part)
        total.add(part)
    groups = [] if group_by == "none" else sorted(merged.values(), key=lambda r: r.key or "")
    return UsageSummary(start, end, group_by, months, total, groups)
