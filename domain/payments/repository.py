"""Every SQL statement for payments, Stripe events and org billing settings.

Nothing here commits. Reads that precede a money movement take the payment row
`FOR UPDATE`, so two events about the same payment (a completion and a refund, or the
webhook and the recharge activity) serialise on it. Lock order: stripe event, payment,
then the credit account (the ledger's own order continues from there).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from domain.payments.models import BillingSettings, PaymentRecord, StripeEventRecord
from schema.base import table_of
from schema.payments import OrgBilling, Payment, StripeEvent

payments = table_of(Payment)
events = table_of(StripeEvent)
billing = table_of(OrgBilling)

_PAYMENT_COLUMNS = [payments.c[name] for name in PaymentRecord.model_fields]
_EVENT_COLUMNS = [events.c[name] for name in StripeEventRecord.model_fields]
_BILLING_COLUMNS = [billing.c[name] for name in BillingSettings.model_fields]


def _payment(row: Any) -> PaymentRecord | None:
    return None if row is None else PaymentRecord.model_validate(dict(row))


# --- payments ------------------------------------------------------------------------------


async def insert_payment(session: AsyncSession, values: Mapping[str, Any]) -> PaymentRecord | None:
    """Insert by id; None when that id exists already (a retried activity)."""
    stmt = (
        insert(payments)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[payments.c.id])
        .returning(*_PAYMENT_COLUMNS)
    )
    return _payment((await session.execute(stmt)).mappings().first())


async def get_payment(
    session: AsyncSession,
    payment_id: uuid.UUID,
    *,
    org_id: uuid.UUID | None = None,
    lock: bool = False,
) -> PaymentRecord | None:
    stmt = select(*_PAYMENT_COLUMNS).where(payments.c.id == payment_id)
    if org_id is not None:
        stmt = stmt.where(payments.c.org_id == org_id)
    if lock:
        stmt = stmt.with_for_update()
    return _payment((await session.execute(stmt)).mappings().first())


async def find_payment(
    session: AsyncSession,
    *,
    payment_id: uuid.UUID | None = None,
    checkout_session_id: str | None = None,
    payment_intent_id: str | None = None,
    charge_id: str | None = None,
    lock: bool = False,
) -> PaymentRecord | None:
    """The first match, trying the most specific reference first (our own id from metadata)."""
    lookups = (
        (payments.c.id, payment_id),
        (payments.c.checkout_session_id, checkout_session_id),
        (payments.c.payment_intent_id, payment_intent_id),
        (payments.c.charge_id, charge_id),
    )
    for column, value in lookups:
        if value is None:
            continue
        stmt = select(*_PAYMENT_COLUMNS).where(column == value).order_by(payments.c.created_at)
        if lock:
            stmt = stmt.with_for_update()
        found = _payment((await session.execute(stmt.limit(1))).mappings().first())
        if found is not None:
            return found
    return None


async def update_payment(
    session: AsyncSession,
    payment_id: uuid.UUID,
    values: Mapping[str, Any],
    *,
    from_statuses: tuple[str, ...] | None = None,
) -> PaymentRecord | None:
    """Apply `values`; with `from_statuses`, only if the status is one of them (CAS)."""
    stmt = (
        update(payments)
        .where(payments.c.id == payment_id)
        .values(**values, updated_at=func.now())
        .returning(*_PAYMENT_COLUMNS)
    )
    if from_statuses is not None:
        stmt = stmt.where(payments.c.status.in_(from_statuses))
    return _payment((await session.execute(stmt)).mappings().first())


async def list_payments(
    session: AsyncSession, org_id: uuid.UUID, *, limit: int, before: uuid.UUID | None = None
) -> list[PaymentRecord]:
    stmt = select(*_PAYMENT_COLUMNS).where(payments.c.org_id == org_id)
    if before is not None:
        anchor = (
            select(payments.c.created_at)
            .where(payments.c.id == before, payments.c.org_id == org_id)
            .scalar_subquery()
        )
        stmt = stmt.where(payments.c.created_at < anchor)
    stmt = stmt.order_by(payments.c.created_at.desc()).limit(limit)
    rows = (await session.execute(stmt)).mappings().all()
    return [PaymentRecord.model_validate(dict(r)) for r in rows]


# --- stripe events -------------------------------------------------------------------------


async def insert_event(
    session: AsyncSession, event_id: str, event_type: str, payload: dict[str, Any]
) -> bool:
    """True when this call recorded the event; False when it was already there."""
    stmt = (
        insert(events)
        .values(id=event_id, type=event_type, payload=payload)
        .on_conflict_do_nothing(index_elements=[events.c.id])
        .returning(events.c.id)
    )
    return (await session.execute(stmt)).first() is not None


async def get_event(
    session: AsyncSession, event_id: str, *, lock: bool = False
) -> StripeEventRecord | None:
    stmt = select(*_EVENT_COLUMNS).where(events.c.id == event_id)
    if lock:
        stmt = stmt.with_for_update()
    row = (await session.execute(stmt)).mappings().first()
    return None if row is None else StripeEventRecord.model_validate(dict(row))


async def event_processed(session: AsyncSession, event_id: str) -> bool:
    stmt = select(events.c.processed_at.is_not(None)).where(events.c.id == event_id)
    return bool((await session.execute(stmt)).scalar_one_or_none())


async def mark_event_processed(session: AsyncSession, event_id: str) -> None:
    stmt = (
        update(events)
        .where(events.c.id == event_id, events.c.processed_at.is_(None))
        .values(processed_at=func.now())
    )
    await session.execute(stmt)


# --- org billing ---------------------------------------------------------------------------


async def get_billing(session: AsyncSession, org_id: uuid.UUID) -> BillingSettings | None:
    stmt = select(*_BILLING_COLUMNS).where(billing.c.org_id == org_id)
    row = (await session.execute(stmt)).mappings().first()
    return None if row is None else BillingSettings.model_validate(dict(row))


@dataclass(frozen=True)
class RechargeSetting:
    auto_recharge: bool
    threshold_micros: int


async def recharge_trigger(session: AsyncSession, org_id: uuid.UUID) -> RechargeSetting | None:
    """The org's auto-recharge switch and threshold by primary key: the relay's one
    indexed read."""
    stmt = select(billing.c.auto_recharge, billing.c.recharge_threshold_micros).where(
        billing.c.org_id == org_id
    )
    row = (await session.execute(stmt)).first()
    return None if row is None else RechargeSetting(bool(row[0]), int(row[1]))


async def upsert_billing(
    session: AsyncSession, org_id: uuid.UUID, values: Mapping[str, Any]
) -> BillingSettings:
    stmt = (
        insert(billing)
        .values(org_id=org_id, **values)
        .on_conflict_do_update(
            index_elements=[billing.c.org_id], set_={**values, "updated_at": func.now()}
        )
        .returning(*_BILLING_COLUMNS)
    )
    row = (await session.execute(stmt)).mappings().one()
    return BillingSettings.model_validate(dict(row))


async def set_customer_if_missing(
    session: AsyncSession, org_id: uuid.UUID, customer_id: str
) -> None:
    """Remember the Stripe customer a checkout created, without overwriting a chosen one."""
    stmt = insert(billing).values(org_id=org_id, stripe_customer_id=customer_id)
    stmt = stmt.on_conflict_do_update(
        index_elements=[billing.c.org_id],
        set_={"stripe_customer_id": customer_id, "updated_at": func.now()},
        where=billing.c.stripe_customer_id.is_(None),
    )
    await session.execute(stmt)


async def set_payment_method_if_missing(
    session: AsyncSession, org_id: uuid.UUID, payment_method: str
) -> None:
    stmt = (
        update(billing)
        .where(billing.c.org_id == org_id, billing.c.default_payment_method.is_(None))
        .values(default_payment_method=payment_method, updated_at=func.now())
    )
    await session.execute(stmt)
