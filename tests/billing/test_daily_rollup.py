"""The daily usage rollup: the same integers as the raw logs, read from the rollup for
closed days, recomputed (never added) on every run."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from config.runtime import Resources
from domain.billing_cycles import retention
from domain.billing_cycles.periods import day_start
from domain.usage import service as usage
from domain.usage.service import closed_days_within, uncovered
from tests.fixtures.relay import make_tenant

DAY = timedelta(days=1)
T0 = datetime(2026, 3, 10, tzinfo=UTC)


def test_closed_days_and_uncovered_ranges() -> None:
    now = T0 + timedelta(hours=5)
    days = closed_days_within(T0 - 3 * DAY + timedelta(hours=1), now + DAY, now)
    assert days == [T0 - 2 * DAY, T0 - DAY]  # partial first day and today are not closed
    covered = [(T0 - 2 * DAY, T0 - DAY), (T0 - DAY, T0)]
    assert uncovered(T0 - 3 * DAY, now, covered) == [(T0 - 3 * DAY, T0 - 2 * DAY), (T0, now)]
    assert uncovered(T0, now, []) == [(T0, now)]
    assert uncovered(T0 - DAY, T0, covered) == []
    inside_month = [(T0 - 5 * DAY, T0)]
    assert closed_days_within(T0 - 6 * DAY, T0, now, inside_month) == [T0 - 6 * DAY]


async def summaries(
    resources: Resources, org_id: uuid.UUID, start: datetime, now: datetime
) -> dict[str, object]:
    out: dict[str, object] = {}
    async with resources.sessions() as s:
        for group in ("none", "day", "model", "key", "month"):
            got = await usage.usage_summary(
                s,
                org_id,
                start=start,
                end=now,
                group_by=group,
                now=now,  # type: ignore[arg-type]
            )
            out[group] = (got.total, got.groups)
        out["chart"] = await usage.cost_by_day_and_model(s, org_id, start=start, end=now, now=now)
    return out


async def test_rollup_gives_the_raw_totals_and_is_read_for_closed_days(
    resources: Resources,
) -> None:
    now = datetime.now(UTC)
    today = day_start(now)
    tenant = await make_tenant(resources, credits_micros=0)
    org_id, other_org = tenant.org_id, (await make_tenant(resources, credits_micros=0)).org_id
    keys = [tenant.key_id, None]
    rows = []
    for d in range(4):  # three closed days and today
        for i in range(5):
            rows.append(
                {
                    "id": f"req_{uuid.uuid4().hex[:24]}",
                    "org": org_id,
                    "key": keys[i % 2],
                    "model": ("m-a", "m-b")[i % 2],
                    "status": "failed" if i == 4 else "succeeded",
                    "cost": 1_000_001 * (d + 1) + i,
                    # today's calls just before now (whatever the hour), earlier days' at dawn
                    "at": today - d * DAY + timedelta(minutes=1 + i)
                    if d
                    else now - timedelta(seconds=1 + i),
                }
            )
    rows.append({**rows[0], "id": "req_other_org_1", "org": other_org, "key": None})
    async with resources.sessions.begin() as s:
        await s.execute(
            text(
                "INSERT INTO request_logs (id, org_id, api_key_id, model, status, http_status,"
                " prompt_tokens, completion_tokens, cost_micros, created_at) VALUES"
                " (:id, :org, :key, :model, :status, 200, 3, 4, :cost, :at)"
            ),
            rows,
        )
    start = today - 3 * DAY
    before = await summaries(resources, org_id, start, now)
    assert before["none"][0].requests == 20  # type: ignore[index]

    plan = retention.RollupPlan(start=start, end=start)  # days only: no month is closed
    async with resources.sessions.begin() as s:
        first = await retention.rollup_batch(s, plan, after=None, limit=100, now=now)
    async with resources.sessions.begin() as s:
        again = await retention.rollup_batch(s, plan, after=None, limit=100, now=now)
    assert first.buckets_written > 0 and again.buckets_written == 0  # recompute, not add
    assert await summaries(resources, org_id, start, now) == before

    # Closed days are now read from the rollup: their raw rows no longer matter. (Logs are
    # never deleted in production; this only proves which source the page reads.)
    async with resources.sessions.begin() as s:
        await s.execute(
            text("DELETE FROM request_logs WHERE org_id = :o AND created_at < :t"),
            {"o": org_id, "t": today},
        )
    assert await summaries(resources, org_id, start, now) == before
    async with resources.sessions.begin() as s:  # today was not rolled: it is read raw
        await s.execute(text("DELETE FROM request_logs WHERE org_id = :o"), {"o": org_id})
    after = await summaries(resources, org_id, start, now)
    assert after["none"][0].requests == 15  # type: ignore[index]
