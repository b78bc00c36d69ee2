"""The plan page's data: what the org is on (the same `current_plan` as `GET /portal/v1/plan`),
the tiers on sale, and what this viewer may do about it.

Everyone in the org sees the plan; choosing one and the customer portal are offered to the
roles the plans service lets act (finance and up, as buying credits), and only when Stripe
is configured, so the page never shows a button that would answer 403 or 503.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from domain.identity.service import OrgContext, signup_grant_key
from domain.ledger import service as ledger
from domain.payments.service import BILLING_ROLE
from domain.plans import service as plans
from domain.plans.catalog import SELF_SERVE, PlanCatalog
from domain.plans.events import GRANTING
from domain.plans.service import PlanView
from domain.pricing.cost import MICROS_PER_CREDIT

BPS_ONE = 10_000
STATUS_LABELS = {
    "none": "No subscription",
    "active": "Active",
    "trialing": "Trialing",
    "past_due": "Past due",
    "canceled": "Canceled",
    "unpaid": "Unpaid",
    "incomplete": "Incomplete",
    "incomplete_expired": "Expired",
    "paused": "Paused",
}


def multiplier_text(bps: int) -> str:
    """10_000 basis points is a multiplier of 1; exact, never a float ("1.2", "0.85")."""
    whole, frac = divmod(bps, BPS_ONE)
    digits = f"{frac:04d}".rstrip("0")
    return f"{whole}.{digits}" if digits else str(whole)


def price_text(amount_cents: int, currency: str) -> str:
    amount = f"{amount_cents // 100}.{amount_cents % 100:02d}"
    return f"${amount}" if currency == "usd" else f"{amount} {currency.upper()}"


@dataclass(frozen=True)
class TierCard:
    tier: str
    name: str
    price: str
    interval: str
    allocation_micros: int
    multiplier: str
    current: bool


@dataclass(frozen=True)
class PlanPage:
    plan: PlanView
    cards: list[TierCard]
    enterprise_current: bool
    stripe_ready: bool
    can_change: bool  # the viewer's role may choose a plan and open the portal
    subscribed: bool  # a live subscription: changes go through the customer portal
    signup_grant_micros: int  # what this org received at sign-up (0: nothing)
    signup_grant_setting_micros: int  # what new sign-ups receive on this server

    @property
    def status_label(self) -> str:
        return STATUS_LABELS.get(self.plan.status, self.plan.status.replace("_", " ").title())

    @property
    def can_checkout(self) -> bool:
        return self.stripe_ready and self.can_change and not self.subscribed

    @property
    def can_manage(self) -> bool:
        """The customer portal needs a Stripe customer, which a subscription brings."""
        return self.stripe_ready and self.can_change and self.plan.subscription is not None


async def signup_grant_of(session: AsyncSession, ctx: OrgContext) -> int:
    """The sign-up grant this org received, from its ledger entry (0 if none)."""
    entry = await ledger.repo.entry_by_key(session, signup_grant_key(ctx.org.id))
    return entry.amount_micros if entry is not None and entry.org_id == ctx.org.id else 0


def tier_cards(catalog: PlanCatalog, current: str) -> list[TierCard]:
    return [
        TierCard(
            tier=tier,
            name=tier.capitalize(),
            price=price_text(spec.amount_cents, spec.currency),
            interval=spec.interval,
            allocation_micros=catalog.allocations.get(tier, 0) * MICROS_PER_CREDIT,
            multiplier=multiplier_text(catalog.multipliers_bps.get(tier, BPS_ONE)),
            current=tier == current,
        )
        for tier, spec in catalog.plans.items()
        if tier in SELF_SERVE
    ]


async def plan_page(
    session: AsyncSession,
    ctx: OrgContext,
    catalog: PlanCatalog,
    *,
    stripe_ready: bool,
    signup_grant_setting_micros: int,
) -> PlanPage:
    view = await plans.current_plan(session, catalog, ctx, now=datetime.now(UTC))
    held = view.subscription
    return PlanPage(
        plan=view,
        cards=tier_cards(catalog, view.tier),
        enterprise_current=view.tier == "enterprise",
        stripe_ready=stripe_ready,
        can_change=ctx.at_least(BILLING_ROLE),
        subscribed=held is not None and held.status in GRANTING,
        signup_grant_micros=await signup_grant_of(session, ctx),
        signup_grant_setting_micros=signup_grant_setting_micros,
    )
