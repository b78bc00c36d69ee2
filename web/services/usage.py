"""The usage page: totals over a date range grouped by day, model or API key, the daily chart
beside them, and the same rows as CSV.

Dates are whole UTC days, `to` included, as people pick them in a date field; the usage
service reads `[from, to + 1 day)`. Keys are shown by name and prefix (ids mean nothing to
people); a call without a key (none today, but the column allows it) shows as "no key".
"""

from __future__ import annotations

import csv
import io
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from domain.errors import InvalidField
from domain.keys import repository as keys_repo
from domain.pricing.cost import format_credits
from domain.usage import service as usage
from domain.usage.models import UsageRow, UsageSummary
from web.services.charts import DayPoint, daily_chart

PageGroup = Literal["day", "model", "key"]
GROUPS: tuple[PageGroup, ...] = ("day", "model", "key")
DEFAULT_DAYS = 30
MAX_CHART_DAYS = 366
CSV_COLUMNS = (
    "group",
    "requests",
    "failed_requests",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cost_credits",
    "cost_micros",
    "byok_requests",
)


@dataclass(frozen=True)
class DateRange:
    first: date
    last: date  # included

    @property
    def start(self) -> datetime:
        return datetime(self.first.year, self.first.month, self.first.day, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        return self.start + timedelta(days=(self.last - self.first).days + 1)

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1


def parse_day(value: str | None, param: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidField(f"{param} must be a date like 2026-01-31", param=param) from None


def date_range(first: str | None, last: str | None, today: date) -> DateRange:
    """The asked range, defaulting to the last 30 days up to today."""
    last_day = parse_day(last, "to") or today
    first_day = parse_day(first, "from") or last_day - timedelta(days=DEFAULT_DAYS - 1)
    if first_day > last_day:
        raise InvalidField("`from` must not be after `to`", param="from")
    return DateRange(first_day, last_day)


@dataclass(frozen=True)
class UsageLine:
    label: str
    row: UsageRow
    share: int  # percent of the range's cost, for the bar beside the row

    @property
    def total_tokens(self) -> int:
        return self.row.prompt_tokens + self.row.completion_tokens


@dataclass(frozen=True)
class UsageView:
    range: DateRange
    group_by: PageGroup
    summary: UsageSummary
    lines: list[UsageLine]
    chart: dict[str, object] | None


async def key_labels(session: AsyncSession, org_id: uuid.UUID) -> dict[str, str]:
    keys = await keys_repo.list_keys(session, org_id)
    return {str(k.id): f"{k.name} ({k.prefix}…)" for k in keys}


async def usage_view(
    session: AsyncSession,
    org_id: uuid.UUID,
    *,
    first: str | None,
    last: str | None,
    group_by: PageGroup,
    chart: bool = True,
) -> UsageView:
    now = datetime.now(UTC)
    span = date_range(first, last, now.date())
    summary = await usage.usage_summary(
        session, org_id, start=span.start, end=span.end, group_by=group_by, now=now
    )
    labels = await key_labels(session, org_id) if group_by == "key" else {}
    total = summary.total.cost_micros
    groups = summary.groups
    if group_by != "day":  # the biggest spenders first; days stay in calendar order
        groups = sorted(groups, key=lambda r: (-r.cost_micros, -r.requests, r.key or ""))
    lines = [
        UsageLine(
            label=(labels.get(r.key or "", "deleted key") if r.key else "no key")
            if group_by == "key"
            else (r.key or "—"),
            row=r,
            share=(r.cost_micros * 100 // total) if total > 0 else 0,
        )
        for r in groups
    ]
    drawn = None
    if chart and span.days <= MAX_CHART_DAYS:
        rows = await usage.cost_by_day_and_model(
            session, org_id, start=span.start, end=span.end, now=now
        )
        points = [DayPoint(d, m, micros, n) for d, m, micros, n in rows]
        drawn = daily_chart(points, span.first, span.last, title="Credits per day")
    return UsageView(span, group_by, summary, lines, drawn)


def _cell(text: str) -> str:
    """Spreadsheets run a cell that starts with = + - @ as a formula: quote such names."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def usage_csv(view: UsageView) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for line in view.lines:
        r = line.row
        writer.writerow(
            (
                _cell(line.label),
                r.requests,
                r.failed_requests,
                r.prompt_tokens,
                r.completion_tokens,
                r.prompt_tokens + r.completion_tokens,
                format_credits(r.cost_micros),
                r.cost_micros,
                r.byok_requests,
            )
        )
    return out.getvalue()
