"""Choosing a plan: a subscription checkout, the Stripe customer portal, and what the org is
on (DESIGN.md §4). Tiers then move with the subscription's events (`domain.plans.events`).

Nothing is written before Stripe answers: the subscription's state arrives with its events,
so a checkout that is never completed leaves nothing behind but an audit record.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from domain.audit.service import record
from domain.billing_cycles.periods import next_month_start
from domain.errors import Conflict
from domain.identity.service import OrgContext
from domain.payments.gateway import StripeGateway
from domain.payments.service import BILLING_ROLE, stripe_missing
from domain.plans import repository as repo
from domain.plans.catalog import PlanCatalog
from domain.plans.events import GRANTING
from domain.plans.repository import SubscriptionRecord


@dataclass(frozen=True)
class PlanUrls:
    success_url: str
    cancel_url: str
    portal_return_url: str


@dataclass(frozen=True)
class NextAllocation:
    at: datetime
    tier: str
    micros: int


@dataclass(frozen=True)
class PlanView:
    tier: str
    status: str  # a Stripe subscription status, or "none" (no subscription)
    subscription: SubscriptionRecord | None
    next_allocation: NextAllocation | None


async def start_checkout(
    session: AsyncSession,
    gateway: StripeGateway | None,
    catalog: PlanCatalog,
    urls: PlanUrls,
    ctx: OrgContext,
    tier: str,
) -> str:
    """The Checkout URL of a subscription to `tier`; an org already subscribed changes its
    plan in the customer portal instead (one subscription per org)."""
    ctx.require(BILLING_ROLE)
    plan = catalog.plan(tier)
    if gateway is None:
        raise stripe_missing()
    held = await repo.get_subscription(session, ctx.org.id)
    if held is not None and held.status in GRANTING:
        raise Conflict(
            f"this org is already subscribed ({held.tier}); change or cancel the plan in the "
            "customer portal (POST /portal/v1/plan/portal)",
            param="tier",
        )
    if plan.price_id:
        item: dict[str, object] = {"price": plan.price_id, "quantity": 1}
    else:
        item = {
            "quantity": 1,
            "price_data": {
                "currency": plan.currency,
                "unit_amount": plan.amount_cents,
                "recurring": {"interval": plan.interval},
                "product_data": {"name": plan.name},
            },
        }
    ref = await gateway.create_subscription_checkout(
        org_id=str(ctx.org.id), tier=tier, line_item=item,
        customer=await repo.customer_of(session, ctx.org.id),
        success_url=urls.success_url, cancel_url=urls.cancel_url,
    )  # fmt: skip
    await record(
        session, ctx.actor, "plans.checkout_created", org_id=ctx.org.id, target_type="org",
        target_id=ctx.org.id, after={"tier": tier, "checkout_session_id": ref.id},
    )  # fmt: skip
    return ref.url


async def portal_url(
    session: AsyncSession, gateway: StripeGateway | None, urls: PlanUrls, ctx: OrgContext
) -> str:
    ctx.require(BILLING_ROLE)
    if gateway is None:
        raise stripe_missing()
    customer = await repo.customer_of(session, ctx.org.id)
    if customer is None:
        raise Conflict("this org has no Stripe customer yet: subscribe to a plan first")
    return await gateway.create_portal_session(customer=customer, return_url=urls.portal_return_url)


async def current_plan(
    session: AsyncSession, catalog: PlanCatalog, ctx: OrgContext, *, now: datetime
) -> PlanView:
    held = await repo.get_subscription(session, ctx.org.id)
    tier = ctx.org.tier
    if held is not None and held.status in GRANTING:
        upcoming = None
        if not held.cancel_at_period_end and held.current_period_end is not None:
            next_tier = held.pending_tier or held.tier
            upcoming = NextAllocation(
                held.current_period_end, next_tier, catalog.allocation_micros(next_tier)
            )
        return PlanView(tier, held.status, held, upcoming)
    micros = catalog.allocation_micros(tier)
    upcoming = NextAllocation(next_month_start(now), tier, micros) if micros > 0 else None
    return PlanView(tier, held.status if held else "none", held, upcoming)
