"""Every SQL statement for plans: an org's subscription row and its tier.

Nothing here commits. The subscription row is written only forward in Stripe's time
(`state_at`), so an event that arrives late never overwrites a newer state.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from schema.base import table_of
from schema.identity import Org
from schema.payments import OrgBilling, OrgSubscription

subscriptions = table_of(OrgSubscription)
orgs = table_of(Org)
billing = table_of(OrgBilling)


class SubscriptionRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    org_id: uuid.UUID
    stripe_subscription_id: str
    stripe_customer_id: str | None
    tier: str
    pending_tier: str | None
    status: str
    current_period_end: datetime | None
    cancel_at_period_end: bool
    state_at: int


_COLUMNS = [subscriptions.c[name] for name in SubscriptionRecord.model_fields]


async def get_subscription(
    session: AsyncSession, org_id: uuid.UUID, *, lock: bool = False
) -> SubscriptionRecord | None:
    stmt = select(*_COLUMNS).where(subscriptions.c.org_id == org_id)
    if lock:
        stmt = stmt.with_for_update()
    row = (await session.execute(stmt)).mappings().first()
    return None if row is None else SubscriptionRecord.model_validate(dict(row))


async def org_of_subscription(session: AsyncSession, subscription_id: str) -> uuid.UUID | None:
    stmt = select(subscriptions.c.org_id).where(
        subscriptions.c.stripe_subscription_id == subscription_id
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def org_of_customer(session: AsyncSession, customer_id: str) -> uuid.UUID | None:
    stmt = select(billing.c.org_id).where(billing.c.stripe_customer_id == customer_id).limit(1)
    return (await session.execute(stmt)).scalar_one_or_none()


async def org_exists(session: AsyncSession, org_id: uuid.UUID) -> bool:
    stmt = select(orgs.c.id).where(orgs.c.id == org_id)
    return (await session.execute(stmt)).first() is not None


async def lock_org(session: AsyncSession, org_id: uuid.UUID) -> str | None:
    """The org's tier, its row locked: one org's plan events apply one at a time."""
    stmt = select(orgs.c.tier).where(orgs.c.id == org_id).with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def save_subscription(
    session: AsyncSession, org_id: uuid.UUID, values: Mapping[str, Any]
) -> SubscriptionRecord:
    """Insert or replace the org's subscription row (the caller decided it is newer)."""
    stmt = (
        insert(subscriptions)
        .values(org_id=org_id, **values)
        .on_conflict_do_update(
            index_elements=[subscriptions.c.org_id], set_={**values, "updated_at": func.now()}
        )
        .returning(*_COLUMNS)
    )
    row = (await session.execute(stmt)).mappings().one()
    return SubscriptionRecord.model_validate(dict(row))


async def set_tier(session: AsyncSession, org_id: uuid.UUID, tier: str) -> None:
    await session.execute(update(orgs).where(orgs.c.id == org_id).values(tier=tier))


async def customer_of(session: AsyncSession, org_id: uuid.UUID) -> str | None:
    stmt = select(billing.c.stripe_customer_id).where(billing.c.org_id == org_id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def remember_customer(session: AsyncSession, org_id: uuid.UUID, customer_id: str) -> None:
    """The Stripe customer a subscription checkout created, never overwriting a chosen one."""
    stmt = insert(billing).values(org_id=org_id, stripe_customer_id=customer_id)
    stmt = stmt.on_conflict_do_update(
        index_elements=[billing.c.org_id],
        set_={"stripe_customer_id": customer_id, "updated_at": func.now()},
        where=billing.c.stripe_customer_id.is_(None),
    )
    await session.execute(stmt)
