"""Buying credits and the org's billing settings: the rules behind the portal routes.

Checkout writes a pending payment row *before* calling Stripe and keys the Stripe call on
that row's id: a crash after Stripe answered leaves a row the completion event can still
find through the session metadata, and a retried call returns the same session instead of
a second one.
"""

from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncSession

from domain.audit.service import record
from domain.errors import InvalidField, ServiceUnavailable
from domain.identity.service import OrgContext
from domain.payments import repository as repo
from domain.payments.gateway import StripeGateway, StripeUnavailable
from domain.payments.models import BillingSettings, CheckoutStarted, PaymentRecord
from domain.payments.packages import CreditPackage, resolve_package
from schema.db import SessionFactory
from schema.unit_of_work import unit_of_work

BILLING_ROLE = "finance"  # finance, admin and owner may buy and manage billing
MAX_PAGE = 100


class CheckoutConfig(BaseModel):
    model_config = ConfigDict(frozen=True)

    packages: dict[str, CreditPackage]
    success_url: str
    cancel_url: str


def stripe_missing() -> ServiceUnavailable:
    return ServiceUnavailable(
        "Stripe is not configured on this server (set OXINF_STRIPE_API_KEY); "
        "credits can still be granted by an operator"
    )


async def start_checkout(
    sessions: SessionFactory,
    gateway: StripeGateway | None,
    config: CheckoutConfig,
    ctx: OrgContext,
    package_id: str,
    *,
    save_payment_method: bool = False,
) -> CheckoutStarted:
    """One unit of work before the Stripe call and one after (see the module docstring:
    the pending payment must be durable before Stripe can know of it)."""
    ctx.require(BILLING_ROLE)
    if gateway is None:
        raise stripe_missing()
    package = resolve_package(config.packages, package_id)
    async with unit_of_work(sessions) as session:
        payment = await repo.insert_payment(
            session,
            {
                "id": uuid.uuid4(),
                "org_id": ctx.org.id,
                "kind": "checkout",
                "package_id": package_id,
                "amount_cents": package.amount_cents,
                "currency": package.currency,
                "credits_micros": package.credits_micros,
                "status": "pending",
                "created_by": ctx.user.id,
            },
        )
        assert payment is not None  # a fresh uuid4 cannot collide
        settings = await repo.get_billing(session, ctx.org.id)
        await record(
            session, ctx.actor, "payments.checkout_created", org_id=ctx.org.id,
            target_type="payment", target_id=payment.id,
            after={"package_id": package_id, "amount_cents": package.amount_cents,
                   "credits_micros": package.credits_micros},
        )  # fmt: skip
    customer = settings.stripe_customer_id if settings else None
    try:
        ref = await gateway.create_checkout_session(
            payment,
            package,
            success_url=config.success_url,
            cancel_url=config.cancel_url,
            customer=customer,
            save_payment_method=save_payment_method,
        )
    except StripeUnavailable:
        async with unit_of_work(sessions) as session:
            await repo.update_payment(
                session, payment.id, {"status": "failed"}, from_statuses=("pending",)
            )
        raise
    values = {"checkout_session_id": ref.id}
    if ref.payment_intent:
        values["payment_intent_id"] = ref.payment_intent
    async with unit_of_work(sessions) as session:
        updated = await repo.update_payment(session, payment.id, values)
    return CheckoutStarted(payment=updated or payment, url=ref.url)


async def list_payments(
    session: AsyncSession, ctx: OrgContext, *, limit: int = 50, before: uuid.UUID | None = None
) -> list[PaymentRecord]:
    ctx.require(BILLING_ROLE)
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidField(f"limit must be between 1 and {MAX_PAGE}", param="limit")
    return await repo.list_payments(session, ctx.org.id, limit=limit, before=before)


async def checkout_payment(
    session: AsyncSession, ctx: OrgContext, checkout_session_id: str
) -> PaymentRecord | None:
    """The org's payment for a Checkout Session (the console's return page), or None: a
    session id of another org's payment is answered exactly like an unknown one."""
    found = await repo.find_payment(session, checkout_session_id=checkout_session_id[:200])
    return found if found is not None and found.org_id == ctx.org.id else None


async def billing_settings(session: AsyncSession, ctx: OrgContext) -> BillingSettings:
    ctx.require(BILLING_ROLE)
    found = await repo.get_billing(session, ctx.org.id)
    return found or BillingSettings(org_id=ctx.org.id)


async def set_auto_recharge(
    session: AsyncSession,
    ctx: OrgContext,
    packages: dict[str, CreditPackage],
    *,
    enabled: bool,
    threshold_micros: int | None,
    package_id: str | None,
    payment_method_id: str | None,
) -> BillingSettings:
    """Turn auto-recharge on or off; on needs a package, a threshold and a saved card.
    Fields left out (None) keep their stored values, so switching off forgets nothing.
    The caller makes the process's `AutoRecharge` forget the org once this commits."""
    ctx.require(BILLING_ROLE)
    before = await repo.get_billing(session, ctx.org.id) or BillingSettings(org_id=ctx.org.id)
    values: dict[str, object] = {"auto_recharge": enabled}
    if threshold_micros is not None:
        if threshold_micros < 0:
            raise InvalidField("threshold must not be negative", param="threshold_micros")
        values["recharge_threshold_micros"] = threshold_micros
    if package_id is not None:
        resolve_package(packages, package_id)
        values["recharge_package_id"] = package_id
    if payment_method_id is not None:
        if not payment_method_id.startswith("pm_") or len(payment_method_id) > 200:
            raise InvalidField(
                "payment_method_id must be a Stripe pm_ id", param="payment_method_id"
            )
        values["default_payment_method"] = payment_method_id
    if enabled:
        if (package_id or before.recharge_package_id) is None:
            raise InvalidField("choose a package to recharge with", param="package_id")
        threshold = (
            before.recharge_threshold_micros if threshold_micros is None else threshold_micros
        )
        if threshold <= 0:
            raise InvalidField("a positive threshold is needed", param="threshold_micros")
        if (payment_method_id or before.default_payment_method) is None:
            raise InvalidField(
                "no saved payment method: pass payment_method_id or buy once with "
                "save_payment_method",
                param="payment_method_id",
            )
        if before.stripe_customer_id is None:
            raise InvalidField(
                "no Stripe customer yet: complete one checkout with save_payment_method first",
                param="payment_method_id",
            )
    after = await repo.upsert_billing(session, ctx.org.id, values)
    await record(
        session, ctx.actor, "billing.auto_recharge", org_id=ctx.org.id,
        target_type="org_billing", target_id=ctx.org.id,
        before=_recharge_view(before), after=_recharge_view(after),
    )  # fmt: skip
    return after


def _recharge_view(settings: BillingSettings) -> dict[str, object]:
    return {
        "auto_recharge": settings.auto_recharge,
        "recharge_threshold_micros": settings.recharge_threshold_micros,
        "recharge_package_id": settings.recharge_package_id,
        "has_payment_method": settings.default_payment_method is not None,
    }
