"""Buying credits with Stripe and the org's billing settings (auto-recharge)."""

from __future__ import annotations

import uuid
from datetime import datetime

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from api.auth import OrgCtx
from domain.inputs import Int64, Text
from domain.payments import service as payments
from domain.payments.models import BillingSettings, PaymentRecord
from domain.pricing.cost import format_credits
from edge.billing import checkout_config, stripe_gateway
from edge.deps import ResourcesDep, SessionDep
from schema.unit_of_work import after_commit

router = APIRouter(prefix="/portal/v1/credits", tags=["portal: credits"])


class PackageOut(BaseModel):
    id: str
    name: str
    amount_cents: int
    currency: str
    credits: str
    credits_micros: int


class CheckoutIn(BaseModel):
    package_id: Text = Field(min_length=1, max_length=60)
    save_payment_method: bool = Field(
        default=False, description="keep the card for auto-recharge (off-session charges)"
    )


class PaymentOut(BaseModel):
    id: uuid.UUID
    kind: str
    status: str
    package_id: str
    amount_cents: int
    currency: str
    credits: str
    credits_micros: int
    reversed_micros: int
    uncollected_micros: int
    checkout_session_id: str | None
    created_at: datetime

    @classmethod
    def of(cls, p: PaymentRecord) -> PaymentOut:
        return cls(
            id=p.id,
            kind=p.kind,
            status=p.status,
            package_id=p.package_id,
            amount_cents=p.amount_cents,
            currency=p.currency,
            credits=format_credits(p.credits_micros),
            credits_micros=p.credits_micros,
            reversed_micros=p.reversed_micros,
            uncollected_micros=p.uncollected_micros,
            checkout_session_id=p.checkout_session_id,
            created_at=p.created_at,
        )


class CheckoutOut(BaseModel):
    url: str
    payment: PaymentOut


class PaymentPage(BaseModel):
    data: list[PaymentOut]


class AutoRechargeIn(BaseModel):
    enabled: bool
    threshold_micros: Int64 | None = Field(default=None, ge=0, description="unset: keep")
    package_id: Text | None = Field(default=None, max_length=60)
    payment_method_id: Text | None = Field(default=None, max_length=200)


class AutoRechargeOut(BaseModel):
    enabled: bool
    threshold_micros: int
    threshold: str
    package_id: str | None
    payment_method_id: str | None
    has_stripe_customer: bool

    @classmethod
    def of(cls, b: BillingSettings) -> AutoRechargeOut:
        return cls(
            enabled=b.auto_recharge,
            threshold_micros=b.recharge_threshold_micros,
            threshold=format_credits(b.recharge_threshold_micros),
            package_id=b.recharge_package_id,
            payment_method_id=b.default_payment_method,
            has_stripe_customer=b.stripe_customer_id is not None,
        )


@router.get("/packages")
async def list_packages(_: OrgCtx, resources: ResourcesDep) -> list[PackageOut]:
    return [
        PackageOut(
            id=package_id,
            name=p.name,
            amount_cents=p.amount_cents,
            currency=p.currency,
            credits=format_credits(p.credits_micros),
            credits_micros=p.credits_micros,
        )
        for package_id, p in sorted(resources.settings.credit_packages.items())
    ]


@router.post("/checkout", status_code=201)
async def create_checkout(body: CheckoutIn, ctx: OrgCtx, resources: ResourcesDep) -> CheckoutOut:
    settings = resources.settings
    started = await payments.start_checkout(
        resources.sessions,
        stripe_gateway(settings),
        checkout_config(settings),
        ctx,
        body.package_id,
        save_payment_method=body.save_payment_method,
    )
    return CheckoutOut(url=started.url, payment=PaymentOut.of(started.payment))


@router.get("/payments")
async def list_payments(
    ctx: OrgCtx,
    session: SessionDep,
    limit: int = Query(default=50, ge=1, le=100),
    before: uuid.UUID | None = None,
) -> PaymentPage:
    found = await payments.list_payments(session, ctx, limit=limit, before=before)
    return PaymentPage(data=[PaymentOut.of(p) for p in found])


@router.get("/auto-recharge")
async def get_auto_recharge(ctx: OrgCtx, session: SessionDep) -> AutoRechargeOut:
    return AutoRechargeOut.of(await payments.billing_settings(session, ctx))


@router.put("/auto-recharge")
async def put_auto_recharge(
    body: AutoRechargeIn, ctx: OrgCtx, resources: ResourcesDep, session: SessionDep
) -> AutoRechargeOut:
    updated = await payments.set_auto_recharge(
        session,
        ctx,
        resources.settings.credit_packages,
        enabled=body.enabled,
        threshold_micros=body.threshold_micros,
        package_id=body.package_id,
        payment_method_id=body.payment_method_id,
    )
    after_commit(session, lambda: resources.auto_recharge.forget(ctx.org.id))
    return AutoRechargeOut.of(updated)
