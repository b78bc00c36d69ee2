"""Retention: keep usage forever (as rollups), customer content only as long as promised.

Order matters: a month is rolled up before any of its content is deleted, and a detail is
deleted only if its org's rollup for that month exists, so a failure between the two steps
can delay deletion but never lose usage. Only closed months are rolled, so content of the
current month waits for the month to close even if its org's window is shorter (the
retention promise is kept to within a month plus one nightly run). Ledger entries and
request logs are never deleted here.

Task results in the result store are deleted once older than their org's window (they are
content, not usage: no rollup waits for them), and their task rows forget the URLs and
inline bytes that pointed at them.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncSession

from domain.billing_cycles import repository as repo
from domain.billing_cycles.periods import add_months, day_start, month_start
from domain.errors import InvalidField
from domain.results import repository as results_repo
from domain.results.store import BlobStore
from domain.usage import daily_repository as daily_repo
from domain.usage import repository as usage_repo

RATE_WINDOW_KEEP = timedelta(hours=1)
DAY_ROLLUP_MARGIN = timedelta(hours=1)
MAX_BATCH = 10_000


class RollupPlan(BaseModel):
    """Recompute [start, end): from the oldest month still holding content (or last month,
    whichever is earlier) up to the start of the current, open month."""

    model_config = ConfigDict(frozen=True)

    start: datetime
    end: datetime


class RollupBatch(BaseModel):
    model_config = ConfigDict(frozen=True)

    orgs: int
    buckets_written: int
    last_org_id: uuid.UUID | None


def _check(limit: int) -> None:
    if not 0 < limit <= MAX_BATCH:
        raise InvalidField(f"limit must be between 1 and {MAX_BATCH}", param="limit")


async def plan_rollup(session: AsyncSession, now: datetime) -> RollupPlan:
    open_month = month_start(now)
    start = add_months(open_month, -1)
    oldest = await repo.earliest_detail(session)
    if oldest is not None:
        start = min(start, month_start(oldest))
    return RollupPlan(start=start, end=open_month)


async def rollup_batch(
    session: AsyncSession,
    plan: RollupPlan,
    *,
    after: uuid.UUID | None,
    limit: int,
    now: datetime | None = None,
) -> RollupBatch:
    """Monthly buckets for the plan's closed months, and daily buckets from the plan's start
    up to the last UTC day that ended at least `DAY_ROLLUP_MARGIN` ago (a call whose
    transaction began before midnight may commit just after; the margin lets it land before
    its day is rolled, and the next night's run recomputes the day anyway)."""
    _check(limit)
    org_ids = await repo.org_ids_page(session, after=after, limit=limit)
    written = await usage_repo.rollup_orgs(session, org_ids, start=plan.start, end=plan.end)
    days_end = day_start((now or datetime.now(UTC)) - DAY_ROLLUP_MARGIN)
    written += await daily_repo.rollup_days(session, org_ids, start=plan.start, end=days_end)
    return RollupBatch(
        orgs=len(org_ids), buckets_written=written, last_org_id=org_ids[-1] if org_ids else None
    )


async def delete_details_batch(session: AsyncSession, now: datetime, *, limit: int) -> int:
    _check(limit)
    return await repo.delete_expired_details(
        session, now=now, open_month=month_start(now), limit=limit
    )


async def trim_callbacks_batch(session: AsyncSession, now: datetime, *, limit: int) -> int:
    _check(limit)
    return await repo.trim_callback_excerpts(session, now=now, limit=limit)


async def delete_rate_windows_batch(session: AsyncSession, now: datetime, *, limit: int) -> int:
    _check(limit)
    return await repo.delete_rate_windows(session, before=now - RATE_WINDOW_KEEP, limit=limit)


async def delete_results_batch(
    session: AsyncSession, store: BlobStore, now: datetime, *, limit: int
) -> int:
    """Deletes one batch of expired stored results: the objects first, then their rows, in
    the transaction that locked them, so a failure part way leaves them to the next run
    (deleting an object twice is harmless)."""
    _check(limit)
    rows = await results_repo.expired(session, now, limit=limit)
    await store.delete_many([key for _, _, key in rows])
    await results_repo.mark_deleted(session, [(task_id, idx) for task_id, idx, _ in rows])
    return len(rows)
