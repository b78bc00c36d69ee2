"""The org's plan: which tier, a Stripe subscription checkout, and the customer portal."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.auth import OrgCtx
from config.settings import Settings, plan_catalog
from domain.plans import service as plans
from domain.plans.catalog import SELF_SERVE
from domain.plans.service import PlanUrls
from domain.pricing.cost import format_credits
from edge.billing import configured_base, plan_urls, stripe_gateway
from edge.deps import ResourcesDep, SessionDep

router = APIRouter(prefix="/portal/v1/plan", tags=["portal: plan"])


class CheckoutIn(BaseModel):
    tier: Literal["trial", "starter", "professional", "enterprise"] = Field(
        description="enterprise is assigned by an operator, never bought here"
    )


class UrlOut(BaseModel):
    url: str


class AllocationOut(BaseModel):
    at: datetime
    tier: str
    credits: str
    credits_micros: int


class TierOut(BaseModel):
    tier: str
    name: str
    amount_cents: int
    currency: str
    interval: str
    allocation_credits: int
    multiplier_bps: int


class PlanOut(BaseModel):
    tier: str
    status: str = Field(description="the Stripe subscription status, or none")
    current_period_end: datetime | None
    cancel_at_period_end: bool
    pending_tier: str | None = Field(description="a downgrade taking effect at period end")
    next_allocation: AllocationOut | None
    tiers: list[TierOut]


def _urls(settings: Settings) -> PlanUrls:
    """Back to the console's plan pages (`/billing/plan/...` redirect there) unless the
    operator configured other return URLs."""
    base = configured_base(settings)
    return plan_urls(
        settings,
        success_url=f"{base}/billing/plan/success?session_id={{CHECKOUT_SESSION_ID}}",
        cancel_url=f"{base}/billing/plan/cancel",
        portal_return_url=f"{base}/console/plan",
    )


@router.get("")
async def get_plan(ctx: OrgCtx, resources: ResourcesDep, session: SessionDep) -> PlanOut:
    catalog = plan_catalog(resources.settings)
    view = await plans.current_plan(session, catalog, ctx, now=datetime.now(UTC))
    sub, upcoming = view.subscription, view.next_allocation
    return PlanOut(
        tier=view.tier,
        status=view.status,
        current_period_end=sub.current_period_end if sub else None,
        cancel_at_period_end=sub.cancel_at_period_end if sub else False,
        pending_tier=sub.pending_tier if sub else None,
        next_allocation=AllocationOut(
            at=upcoming.at,
            tier=upcoming.tier,
            credits=format_credits(upcoming.micros),
            credits_micros=upcoming.micros,
        )
        if upcoming
        else None,
        tiers=[
            TierOut(
                tier=tier,
                name=spec.name,
                amount_cents=spec.amount_cents,
                currency=spec.currency,
                interval=spec.interval,
                allocation_credits=catalog.allocations.get(tier, 0),
                multiplier_bps=catalog.multipliers_bps.get(tier, 10_000),
            )
            for tier, spec in catalog.plans.items()
            if tier in SELF_SERVE
        ],
    )


@router.post("/checkout", status_code=201)
async def checkout(
    body: CheckoutIn, ctx: OrgCtx, resources: ResourcesDep, session: SessionDep
) -> UrlOut:
    settings = resources.settings
    url = await plans.start_checkout(
        session, stripe_gateway(settings), plan_catalog(settings), _urls(settings), ctx, body.tier
    )
    return UrlOut(url=url)


@router.post("/portal")
async def portal(ctx: OrgCtx, resources: ResourcesDep, session: SessionDep) -> UrlOut:
    settings = resources.settings
    return UrlOut(
        url=await plans.portal_url(session, stripe_gateway(settings), _urls(settings), ctx)
    )
