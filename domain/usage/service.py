"""The portal's and the console's usage totals, from the sources that must agree.

Totals come from raw `request_logs` and two rollups of them: `usage_monthly` and
`usage_daily`. A month is read from its rollup only when it is closed, lies wholly inside
the asked range and the org has rollup rows for it; likewise a UTC day from the daily rollup
(for what no monthly rollup covers). Everything else (today, partial days or months at the
ends of the range, periods never rolled) is summed from the raw logs, read only over those
uncovered ranges so the index on (org_id, created_at) bounds the work. A rollup is a
recomputation of exactly those logs, so every source yields the same integers; the rollups
are what keep a month of heavy traffic a few rows to read. Per-day grouping cannot use a
monthly rollup (it has no days), so `day` reads daily rollups and logs only.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from domain.billing_cycles.periods import add_months, day_start, month_start
from domain.errors import InvalidRequest
from domain.usage import daily_repository as daily
from domain.usage import repository as repo
from domain.usage.models import GroupBy, UsageRow, UsageSummary

MAX_RANGE_DAYS = 3660
DAY = timedelta(days=1)
Range = tuple[datetime, datetime]


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


def closed_days_within(
    start: datetime, end: datetime, now: datetime, covered: Sequence[Range] = ()
) -> list[datetime]:
    """UTC days wholly inside [start, end), ended before `now`'s day began, and not inside
    any of the `covered` ranges."""
    days: list[datetime] = []
    day = day_start(start)
    if day < start:
        day += DAY
    today = day_start(now)
    while day + DAY <= end and day < today:
        if not any(a <= day and day + DAY <= b for a, b in covered):
            days.append(day)
        day += DAY
    return days


def uncovered(start: datetime, end: datetime, covered: Sequence[Range]) -> list[Range]:
    """[start, end) minus the covered ranges, as sorted, merged ranges."""
    out: list[Range] = []
    at = start
    for a, b in sorted(covered):
        if a > at:
            out.append((at, min(a, end)))
        at = max(at, b)
        if at >= end:
            break
    if at < end:
        out.append((at, end))
    merged: list[Range] = []
    for a, b in out:
        if merged and merged[-1][1] == a:
            merged[-1] = (merged[-1][0], b)
        else:
            merged.append((a, b))
    return merged


def _check(start: datetime, end: datetime) -> None:
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidRequest("timestamps must carry a timezone", param="from")
    if start >= end:
        raise InvalidRequest("`from` must be before `to`", param="from")
    if (end - start).days > MAX_RANGE_DAYS:
        raise InvalidRequest(f"the range may span at most {MAX_RANGE_DAYS} days", param="from")


async def usage_summary(
    session: AsyncSession,
    org_id: uuid.UUID,
    *,
    start: datetime,
    end: datetime,
    group_by: GroupBy,
    now: datetime | None = None,
) -> UsageSummary:
    _check(start, end)
    now = now or datetime.now(UTC)
    months: list[datetime] = []
    if group_by != "day":
        months = await repo.rolled_months(session, org_id, closed_months_within(start, end, now))
    covered: list[Range] = [(m, add_months(m, 1)) for m in months]
    days = await daily.rolled_days(session, org_id, closed_days_within(start, end, now, covered))
    covered += [(d, d + DAY) for d in days]
    parts = await repo.totals_from_logs(session, org_id, uncovered(start, end, covered), group_by)
    parts += await repo.totals_from_rollups(session, org_id, months, group_by)
    parts += await daily.totals_from_days(session, org_id, days, group_by)
    merged: dict[str | None, UsageRow] = {}
    total = UsageRow(key=None)
    for part in parts:
        merged.setdefault(part.key, UsageRow(key=part.key)).add(part)
        total.add(part)
    groups = [] if group_by == "none" else sorted(merged.values(), key=lambda r: r.key or "")
    return UsageSummary(start, end, group_by, months, total, groups)


async def cost_by_day_and_model(
    session: AsyncSession,
    org_id: uuid.UUID,
    *,
    start: datetime,
    end: datetime,
    now: datetime | None = None,
) -> list[tuple[str, str, int, int]]:
    """(UTC day, model, cost micros, requests) per day and model in [start, end), from the
    daily rollup where a day has one and from the raw logs elsewhere."""
    _check(start, end)
    days = await daily.rolled_days(
        session, org_id, closed_days_within(start, end, now or datetime.now(UTC))
    )
    raw = uncovered(start, end, [(d, d + DAY) for d in days])
    rows = await repo.daily_cost_by_model(session, org_id, raw)
    rows += await daily.cost_by_day_and_model(session, org_id, days)
    return sorted(rows)
