"""Stripe as configured for this process, shared by `/portal/v1/credits` and the console.

Both start checkouts through `domain.payments.service.start_checkout`; they differ only in
where Stripe sends the buyer back (the console returns to its own pages).
"""

from __future__ import annotations

from config.settings import Settings
from domain.payments.gateway import StripeGateway, gateway_for
from domain.payments.service import CheckoutConfig
from domain.plans.service import PlanUrls


def stripe_gateway(settings: Settings) -> StripeGateway | None:
    """None when no Stripe key is configured (callers answer "Stripe is not configured")."""
    key = settings.stripe_api_key.get_secret_value() if settings.stripe_api_key else None
    return gateway_for(key, settings.stripe_api_base, timeout_s=settings.stripe_timeout_s)


def configured_base(settings: Settings) -> str:
    return (settings.public_base_url or f"http://{settings.api_host}:{settings.api_port}").rstrip(
        "/"
    )


def checkout_config(
    settings: Settings, *, success_url: str | None = None, cancel_url: str | None = None
) -> CheckoutConfig:
    """The configured return URLs win; else the given ones; else `/billing/...` on the
    configured base (which redirect to the console's return pages)."""
    base = configured_base(settings)
    return CheckoutConfig(
        packages=settings.credit_packages,
        success_url=settings.checkout_success_url
        or success_url
        or f"{base}/billing/success?session_id={{CHECKOUT_SESSION_ID}}",
        cancel_url=settings.checkout_cancel_url or cancel_url or f"{base}/billing/cancel",
    )


def plan_urls(
    settings: Settings, *, success_url: str, cancel_url: str, portal_return_url: str
) -> PlanUrls:
    """Where a plan's Checkout returns (the configured return URLs win, as for credits) and
    where the customer portal sends people back (`OXINF_PLAN_PORTAL_RETURN_URL` wins)."""
    checkout = checkout_config(settings, success_url=success_url, cancel_url=cancel_url)
    return PlanUrls(
        success_url=checkout.success_url,
        cancel_url=checkout.cancel_url,
        portal_return_url=settings.plan_portal_return_url or portal_return_url,
    )
