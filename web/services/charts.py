"""Chart payloads for uPlot: days on x, exact integer micros on y, with exact decimal labels.

The page ships the payload as a JSON `<script type="application/json">` block (data, not
code, so the strict CSP stays intact) and `charts.js` draws it. Heights are plotted from the
integer micros; every number a person reads (axis ticks aside) is the server's exact decimal
string, so no float ever stands for an amount.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from domain.pricing.cost import format_credits

MAX_SERIES = 6  # the busiest models get a line each; the rest are summed as "other models"


@dataclass(frozen=True)
class DayPoint:
    day: str  # "YYYY-MM-DD", a UTC day
    group: str  # a model name, an API key label, ...
    micros: int
    requests: int


def day_range(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def daily_chart(
    points: Iterable[DayPoint], first: date, last: date, *, title: str
) -> dict[str, Any]:
    """One bar per day for the total and one line per group (model), zero-filled."""
    days = day_range(first, last)
    index = {d.isoformat(): i for i, d in enumerate(days)}
    per_group: dict[str, list[int]] = {}
    requests = [0] * len(days)
    for p in points:
        i = index.get(p.day)
        if i is None:
            continue
        per_group.setdefault(p.group, [0] * len(days))[i] += p.micros
        requests[i] += p.requests
    ranked = sorted(per_group, key=lambda g: (-sum(per_group[g]), g))
    shown, rest = ranked[:MAX_SERIES], ranked[MAX_SERIES:]
    groups = {g: per_group[g] for g in shown}
    if rest:
        groups["other models"] = [sum(per_group[g][i] for g in rest) for i in range(len(days))]
    total = [sum(v[i] for v in per_group.values()) for i in range(len(days))]
    stamps = [int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp()) for d in days]
    series = [{"label": "Total", "micros": total, "text": [format_credits(m) for m in total]}]
    series += [
        {"label": g, "micros": v, "text": [format_credits(m) for m in v]} for g, v in groups.items()
    ]
    return {
        "title": title,
        "x": stamps,
        "days": [d.isoformat() for d in days],
        "requests": requests,
        "series": series,
        "points": sum(1 for m in total if m > 0),
    }
