"""Billing periods are calendar months in UTC, named "YYYY-MM"."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from domain.errors import InvalidField

_PERIOD = re.compile(r"([0-9]{4})-(0[1-9]|1[0-2])")


def parse_period(period: str) -> datetime:
    """The first instant of the period (UTC)."""
    match = _PERIOD.fullmatch(period)
    if match is None:
        raise InvalidField(f"period must look like 2025-01, not {period!r}", param="period")
    return datetime(int(match.group(1)), int(match.group(2)), 1, tzinfo=UTC)


def period_of(moment: datetime) -> str:
    utc = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return f"{utc.year:04d}-{utc.month:02d}"


def month_start(moment: datetime) -> datetime:
    return parse_period(period_of(moment))


def add_months(start: datetime, months: int) -> datetime:
    index = start.year * 12 + (start.month - 1) + months
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def next_month_start(moment: datetime) -> datetime:
    """When the month after `moment`'s begins (monthly allocations, budgets reset then)."""
    return add_months(month_start(moment), 1)


def day_start(moment: datetime) -> datetime:
    """The start of `moment`'s UTC day."""
    utc = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return datetime(utc.year, utc.month, utc.day, tzinfo=UTC)
