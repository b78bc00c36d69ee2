"""SQL for allocations and retention: set-based, batched, and safe to run concurrently.

These statements span tenants by nature (a monthly run covers every org), so tenant
scoping is by join: every row they touch is matched to its own org's tier or retention
window, never to another org's. Deletes and trims take rows `FOR UPDATE SKIP LOCKED` in
bounded batches, so a run never blocks the relay for long and two runs never collide.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from schema.base import table_of
from schema.identity import Org
from schema.payments import OrgBilling, OrgSubscription
from schema.requests import RequestDetail

orgs = table_of(Org)
billing = table_of(OrgBilling)
details = table_of(RequestDetail)
subscriptions = table_of(OrgSubscription)
# The statuses in which a subscription, not the schedule, allocates (`domain.plans.events.LIVE`).
SUBSCRIPTION_ALLOCATES = ("trialing", "active", "past_due", "unpaid", "incomplete", "paused")


@dataclass(frozen=True)
class OrgAllocationRow:
    org_id: uuid.UUID
    tier: str
    override_credits: int | None
    # A live subscription allocates by its paid invoices (`domain.plans.events`), never here.
    subscribed: bool = False


async def orgs_page(
    session: AsyncSession, *, after: uuid.UUID | None, limit: int
) -> list[OrgAllocationRow]:
    """Orgs in id order after `after` (keyset), with any contract allocation override."""
    subscribed = (
        select(subscriptions.c.org_id)
        .where(
            subscriptions.c.org_id == orgs.c.id,
            subscriptions.c.status.in_(SUBSCRIPTION_ALLOCATES),
        )
        .exists()
    )
    stmt = (
        select(orgs.c.id, orgs.c.tier, billing.c.allocation_credits_override, subscribed)
        .select_from(orgs.outerjoin(billing, billing.c.org_id == orgs.c.id))
        .order_by(orgs.c.id)
        .limit(limit)
    )
    if after is not None:
        stmt = stmt.where(orgs.c.id > after)
    rows = (await session.execute(stmt)).all()
    return [OrgAllocationRow(r[0], r[1], r[2], bool(r[3])) for r in rows]


async def org_ids_page(
    session: AsyncSession, *, after: uuid.UUID | None, limit: int
) -> list[uuid.UUID]:
    stmt = select(orgs.c.id).order_by(orgs.c.id).limit(limit)
    if after is not None:
        stmt = stmt.where(orgs.c.id > after)
    return list((await session.execute(stmt)).scalars())


async def earliest_detail(session: AsyncSession) -> datetime | None:
    value = (await session.execute(select(func.min(details.c.created_at)))).scalar_one()
    return value if isinstance(value, datetime) else None


_DELETE_DETAILS = text(
    """
    WITH doomed AS (
        SELECT d.request_id
        FROM request_details d JOIN orgs o ON o.id = d.org_id
        WHERE d.created_at < :open_month
          AND d.created_at < CAST(:now AS timestamptz) - make_interval(days => o.retention_days)
          AND EXISTS (
              SELECT 1 FROM usage_monthly u
              WHERE u.org_id = d.org_id AND u.month = date_trunc('month', d.created_at, 'UTC')
          )
        ORDER BY d.created_at
        LIMIT :limit
        FOR UPDATE OF d SKIP LOCKED
    ), gone AS (
        DELETE FROM request_details t USING doomed
        WHERE t.request_id = doomed.request_id
        RETURNING 1
    )
    SELECT count(*) FROM gone
    """
)


async def delete_expired_details(
    session: AsyncSession, *, now: datetime, open_month: datetime, limit: int
) -> int:
    """One batch of content past its org's retention, in closed months that have a rollup."""
    params = {"now": now, "open_month": open_month, "limit": limit}
    return int((await session.execute(_DELETE_DETAILS, params)).scalar_one())


_TRIM_CALLBACKS = text(
    """
    WITH old AS (
        SELECT c.id
        FROM callback_attempts c JOIN orgs o ON o.id = c.org_id
        WHERE c.response_excerpt IS NOT NULL
          AND c.created_at < CAST(:now AS timestamptz) - make_interval(days => o.retention_days)
        ORDER BY c.id
        LIMIT :limit
        FOR UPDATE OF c SKIP LOCKED
    ), trimmed AS (
        UPDATE callback_attempts t SET response_excerpt = NULL
        FROM old WHERE t.id = old.id
        RETURNING 1
    )
    SELECT count(*) FROM trimmed
    """
)


async def trim_callback_excerpts(session: AsyncSession, *, now: datetime, limit: int) -> int:
    """Callback response excerpts are customer content too: same window as the org's logs."""
    return int((await session.execute(_TRIM_CALLBACKS, {"now": now, "limit": limit})).scalar_one())


_DELETE_WINDOWS = text(
    """
    WITH old AS (
        SELECT api_key_id, window_start FROM rate_limit_windows
        WHERE window_start < :before
        LIMIT :limit
        FOR UPDATE SKIP LOCKED
    ), gone AS (
        DELETE FROM rate_limit_windows r USING old
        WHERE r.api_key_id = old.api_key_id AND r.window_start = old.window_start
        RETURNING 1
    )
    SELECT count(*) FROM gone
    """
)


async def delete_rate_windows(session: AsyncSession, *, before: datetime, limit: int) -> int:
    return int(
        (await session.execute(_DELETE_WINDOWS, {"before": before, "limit": limit})).scalar_one()
    )
