"""Stripe events that move an org's plan, exactly once and in any order.

- `invoice.paid` credits the paid period's allocation once, under the same ledger key the
  monthly schedule uses (`alloc:{org}:{period}`: `YYYY-MM` for monthly plans, `YYYY-Www` for
  the weekly trial), so a period is never allocated twice whichever path comes first; the
  schedule skips orgs whose subscription is live (`domain.billing_cycles`). A key already
  taken (by a retry, a duplicate, or the schedule before the org subscribed) moves nothing.
- `customer.subscription.created/updated/deleted` (and a subscription checkout's completion)
  move the tier. Each state is applied only if it is newer in Stripe's time than the one
  held (`state_at`), so a late event changes nothing. An upgrade applies at once (tier and
  multiplier); a downgrade waits for the end of the period already paid for
  (`pending_tier`), applied by the next period's invoice or subscription update; a
  cancellation keeps the credits granted and returns the org to the free tier when the
  subscription ends.

Orgs are found by our id in the subscription's metadata first, then by subscription or
customer id; events about subscriptions 0xinf did not create are ignored.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from domain.audit.service import SYSTEM, record
from domain.errors import Conflict
from domain.ledger import service as ledger
from domain.payments.models import StripeEventRecord
from domain.payments.stripe_objects import EventResult, Obj, ignored, int_field, ref
from domain.plans import repository as repo
from domain.plans.catalog import SELF_SERVE, PlanCatalog, is_downgrade
from domain.pricing.cost import format_credits

PLAN_ACTOR = "system:plans"
# Statuses in which the org is on the subscribed tier (past_due: Stripe is still retrying).
GRANTING = ("trialing", "active", "past_due")
PlanHandler = Callable[[AsyncSession, StripeEventRecord, Obj, PlanCatalog], Awaitable[EventResult]]


def period_key(interval: str, start: datetime) -> str:
    """The allocation period a paid invoice covers: a month, or an ISO week for weekly plans."""
    start = start.astimezone(UTC)
    if interval == "week":
        year, week, _ = start.isocalendar()
        return f"{year:04d}-W{week:02d}"
    return f"{start.year:04d}-{start.month:02d}"


def allocation_key(org_id: uuid.UUID, period: str) -> str:
    return f"alloc:{org_id}:{period}"  # the schedule's key (`domain.billing_cycles`)


def _dict(value: Any) -> Obj:
    return value if isinstance(value, dict) else {}


def _moment(value: Any) -> datetime | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return datetime.fromtimestamp(value, UTC)
    return None


def _first_item(obj: Obj) -> Obj:
    for key in ("items", "lines"):
        data = _dict(obj.get(key)).get("data")
        if isinstance(data, list) and data and isinstance(data[0], dict):
            return data[0]
    return {}


def _price_id(item: Obj) -> str | None:
    price = ref(item, "price")
    if price is None:  # newer API versions: lines carry pricing.price_details.price
        price = ref(_dict(_dict(item.get("pricing")).get("price_details")), "price")
    return price


def _tier(catalog: PlanCatalog, item: Obj, metadata: Obj) -> str | None:
    tier = catalog.tier_of_price(_price_id(item))
    if tier is None:
        named = metadata.get("oxinf_tier")
        tier = named if isinstance(named, str) else None
    return tier if tier in SELF_SERVE else None


async def _org(
    session: AsyncSession, metadata: Obj, subscription: str | None, customer: str | None
) -> uuid.UUID | None:
    raw = metadata.get("oxinf_org_id")
    if isinstance(raw, str):
        try:
            org_id = uuid.UUID(raw)
        except ValueError:
            org_id = None
        if org_id is not None and await repo.org_exists(session, org_id):
            return org_id
    if subscription is not None:
        found = await repo.org_of_subscription(session, subscription)
        if found is not None:
            return found
    return await repo.org_of_customer(session, customer) if customer else None


async def _move_tier(session: AsyncSession, org_id: uuid.UUID, old: str, new: str) -> None:
    if old == new:
        return
    await repo.set_tier(session, org_id, new)
    await record(
        session, SYSTEM, "plans.tier_changed", org_id=org_id, target_type="org",
        target_id=org_id, before={"tier": old}, after={"tier": new},
    )  # fmt: skip


async def _apply_state(
    session: AsyncSession,
    org_id: uuid.UUID,
    *,
    subscription: str,
    customer: str | None,
    tier: str,
    status: str,
    period_end: datetime | None,
    cancel_at_period_end: bool,
    state_at: int,
) -> EventResult:
    """Hold this state if it is newer than the one held, and move the org's tier to match."""
    org_tier = await repo.lock_org(session, org_id)
    if org_tier is None:
        return ignored("the org no longer exists")
    held = await repo.get_subscription(session, org_id, lock=True)
    if held is not None and held.state_at > state_at:
        return ignored("an older state than the one held")
    replaced = held is not None and held.stripe_subscription_id != subscription
    if replaced and held is not None and held.status in GRANTING and status not in GRANTING:
        return ignored("an earlier subscription ended; the org has a newer one")
    live = status in GRANTING
    effective, pending = tier, None
    same = held is not None and held.stripe_subscription_id == subscription
    if live and same and held is not None and is_downgrade(held.tier, tier):
        period_over = (
            held.current_period_end is not None
            and period_end is not None
            and period_end > held.current_period_end
        )
        if not period_over:  # paid for the higher tier until the period ends
            effective, pending = held.tier, tier
    values: dict[str, Any] = {
        "stripe_subscription_id": subscription,
        "stripe_customer_id": customer or (held.stripe_customer_id if held else None),
        "tier": effective,
        "pending_tier": pending,
        "status": status,
        "current_period_end": period_end or (held.current_period_end if held else None),
        "cancel_at_period_end": cancel_at_period_end,
        "state_at": state_at,
    }
    await repo.save_subscription(session, org_id, values)
    if customer:
        await repo.remember_customer(session, org_id, customer)
    if live:
        await _move_tier(session, org_id, org_tier, effective)
    elif held is not None and held.status in GRANTING:  # it ended: credits granted stay
        await _move_tier(session, org_id, org_tier, "free")
    return EventResult(result="recorded", detail=f"{status} on {effective}")


def _state_at(event: StripeEventRecord) -> int:
    return int_field(event.payload, "created") or 0


async def subscription_changed(
    session: AsyncSession, event: StripeEventRecord, obj: Obj, catalog: PlanCatalog
) -> EventResult:
    subscription = ref(obj, "id")
    if subscription is None:
        return ignored("subscription without an id")
    metadata = _dict(obj.get("metadata"))
    customer = ref(obj, "customer")
    org_id = await _org(session, metadata, subscription, customer)
    if org_id is None:
        return ignored("not a subscription 0xinf created")
    item = _first_item(obj)
    tier = _tier(catalog, item, metadata)
    if tier is None:
        return ignored("the subscription's price is not one of our plans")
    status = obj.get("status")
    if event.type == "customer.subscription.deleted" or not isinstance(status, str):
        status = "canceled"
    period_end = _moment(obj.get("current_period_end")) or _moment(item.get("current_period_end"))
    return await _apply_state(
        session, org_id, subscription=subscription, customer=customer, tier=tier,
        status=status, period_end=period_end,
        cancel_at_period_end=bool(obj.get("cancel_at_period_end")), state_at=_state_at(event),
    )  # fmt: skip


async def subscription_checkout_completed(
    session: AsyncSession, event: StripeEventRecord, obj: Obj, catalog: PlanCatalog
) -> EventResult:
    """Remember the customer and the subscription; the state itself comes with the
    subscription's own events and its invoices, whichever arrives first."""
    subscription, customer = ref(obj, "subscription"), ref(obj, "customer")
    metadata = _dict(obj.get("metadata"))
    org_id = await _org(session, metadata, subscription, customer)
    if org_id is None or subscription is None:
        return ignored("not a subscription checkout 0xinf created")
    if customer:
        await repo.remember_customer(session, org_id, customer)
    if await repo.get_subscription(session, org_id) is None and obj.get("payment_status") == "paid":
        tier = metadata.get("oxinf_tier")
        if isinstance(tier, str) and tier in SELF_SERVE:
            # The oldest possible state: any event about the subscription itself wins over it.
            return await _apply_state(
                session, org_id, subscription=subscription, customer=customer, tier=tier,
                status="active", period_end=None, cancel_at_period_end=False, state_at=0,
            )  # fmt: skip
    return EventResult(result="recorded", detail="subscription checkout completed")


def _invoice_subscription(obj: Obj) -> tuple[str | None, Obj]:
    """The invoice's subscription id and metadata (older and newer API shapes)."""
    details = _dict(obj.get("subscription_details")) or _dict(
        _dict(obj.get("parent")).get("subscription_details")
    )
    subscription = ref(obj, "subscription") or ref(details, "subscription")
    return subscription, _dict(details.get("metadata"))


async def invoice_paid(
    session: AsyncSession, event: StripeEventRecord, obj: Obj, catalog: PlanCatalog
) -> EventResult:
    subscription, metadata = _invoice_subscription(obj)
    if subscription is None:
        return ignored("an invoice for no subscription")
    customer = ref(obj, "customer")
    org_id = await _org(session, metadata, subscription, customer)
    if org_id is None:
        return ignored("not a subscription 0xinf created")
    item = _first_item(obj)
    tier = _tier(catalog, item, metadata)
    period = _dict(item.get("period"))
    start = _moment(period.get("start")) or _moment(obj.get("period_start"))
    if tier is None or start is None:
        return ignored("the invoice's price or period is not one of our plans")
    end = _moment(period.get("end"))
    # The invoice says the subscription is paid through `end`: hold that state unless a
    # newer one is held already (`state_at` 0 loses to any subscription event).
    held = await repo.get_subscription(session, org_id)
    if held is None or (held.pending_tier == tier and end and held.current_period_end
                        and end > held.current_period_end):  # fmt: skip
        await _apply_state(
            session, org_id, subscription=subscription, customer=customer, tier=tier,
            status="active", period_end=end, cancel_at_period_end=False,
            state_at=held.state_at if held else 0,
        )  # fmt: skip
    amount = catalog.allocation_micros(tier)
    key = allocation_key(org_id, period_key(catalog.plans[tier].interval, start))
    if amount <= 0:
        return ignored(f"the {tier} plan allocates nothing")
    await ledger.ensure_account(session, org_id)
    try:
        posting = await ledger.credit(
            session, org_id, amount, kind="allocation", key=key, actor=PLAN_ACTOR,
            reason=f"{tier} plan: {format_credits(amount)} credits for {key.rsplit(':', 1)[1]}",
            reference=f"stripe:{ref(obj, 'id') or event.id}",
        )  # fmt: skip
    except Conflict:  # the period was allocated already, with another tier's amount
        return EventResult(result="already_credited", detail=key)
    return EventResult(result="already_credited" if posting.replayed else "credited", detail=key)


HANDLERS: dict[str, PlanHandler] = {
    "invoice.paid": invoice_paid,
    "customer.subscription.created": subscription_changed,
    "customer.subscription.updated": subscription_changed,
    "customer.subscription.deleted": subscription_changed,
}
