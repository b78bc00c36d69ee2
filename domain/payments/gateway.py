"""The few Stripe calls 0xinf makes, through the official `stripe` library.

Every create carries an idempotency key derived from our payment id, so a retried activity
or a double-clicked checkout reaches Stripe as the same request and gets the same object
back. `OXINF_STRIPE_API_BASE` points the library at another host (a local fake in tests);
requests go through the library's httpx client, which needs nothing but the socket.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

import stripe
from pydantic import BaseModel, ConfigDict

from domain.errors import DomainError
from domain.payments.models import PaymentRecord
from domain.payments.packages import CreditPackage


class StripeUnavailable(DomainError):
    """Stripe could not be reached or refused our request; nothing was bought."""

    code = "upstream_error"


class StripeConfig(BaseModel):
    model_config = ConfigDict(frozen=True)

    api_key: str
    api_base: str | None = None
    timeout_s: float = 20.0
    max_network_retries: int = 2


class CheckoutSessionRef(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    url: str
    payment_intent: str | None = None


class IntentOutcome(BaseModel):
    """An off-session PaymentIntent's result: succeeded, processing, or failed (with why)."""

    model_config = ConfigDict(frozen=True)

    id: str | None
    status: str
    charge_id: str | None = None
    error_code: str | None = None


_clients: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[StripeConfig, stripe.StripeClient]
] = weakref.WeakKeyDictionary()


def _client(config: StripeConfig) -> stripe.StripeClient:
    """One client per event loop and config: its httpx pool belongs to the loop it ran on."""
    loop = asyncio.get_running_loop()
    per_loop = _clients.setdefault(loop, {})
    client = per_loop.get(config)
    if client is None:
        bases: dict[str, str] = {}
        if config.api_base:
            bases["api"] = config.api_base.rstrip("/")
        client = stripe.StripeClient(
            config.api_key,
            base_addresses=bases,  # type: ignore[arg-type]
            http_client=stripe.HTTPXClient(timeout=config.timeout_s),
            max_network_retries=config.max_network_retries,
        )
        per_loop[config] = client
    return client


def payment_metadata(payment: PaymentRecord) -> dict[str, str]:
    """Written on the session and its PaymentIntent so any later event can find our row."""
    return {
        "oxinf_payment_id": str(payment.id),
        "oxinf_org_id": str(payment.org_id),
        "oxinf_package_id": payment.package_id,
    }


def _id_of(value: object) -> str | None:
    """An expandable Stripe field: a plain id, or an object that has one."""
    if isinstance(value, str):
        return value or None
    inner = getattr(value, "id", None)
    return inner if isinstance(inner, str) and inner else None


class StripeGateway:
    def __init__(self, config: StripeConfig) -> None:
        self._config = config

    async def create_checkout_session(
        self,
        payment: PaymentRecord,
        package: CreditPackage,
        *,
        success_url: str,
        cancel_url: str,
        customer: str | None,
        save_payment_method: bool,
    ) -> CheckoutSessionRef:
        metadata = payment_metadata(payment)
        intent_data: dict[str, Any] = {"metadata": metadata}
        if save_payment_method:
            intent_data["setup_future_usage"] = "off_session"
        params: dict[str, Any] = {
            "mode": "payment",
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": payment.currency,
                        "unit_amount": payment.amount_cents,
                        "product_data": {"name": package.name},
                    },
                }
            ],
            "client_reference_id": str(payment.org_id),
            "metadata": metadata,
            "payment_intent_data": intent_data,
            "success_url": success_url,
            "cancel_url": cancel_url,
        }
        if customer:
            params["customer"] = customer
        elif save_payment_method:
            params["customer_creation"] = "always"
        try:
            session = await _client(self._config).v1.checkout.sessions.create_async(
                params,  # type: ignore[arg-type]
                options={"idempotency_key": f"oxinf-checkout-{payment.id}"},
            )
        except stripe.StripeError as exc:
            raise StripeUnavailable(f"Stripe did not create the checkout: {_reason(exc)}") from exc
        session_id, url = _id_of(session.id), session.url
        if not session_id or not url:
            raise StripeUnavailable("Stripe answered without a checkout session URL")
        return CheckoutSessionRef(
            id=session_id, url=str(url), payment_intent=_id_of(session.payment_intent)
        )

    async def create_subscription_checkout(
        self,
        *,
        org_id: str,
        tier: str,
        line_item: dict[str, Any],
        customer: str | None,
        success_url: str,
        cancel_url: str,
    ) -> CheckoutSessionRef:
        """A Checkout Session in subscription mode; the subscription carries our org and
        tier in its metadata, so every later event about it (and its invoices) finds us."""
        metadata = {"oxinf_org_id": org_id, "oxinf_tier": tier}
        params: dict[str, Any] = {
            "mode": "subscription",
            "line_items": [line_item],
            "client_reference_id": org_id,
            "metadata": metadata,
            "subscription_data": {"metadata": metadata},
            "success_url": success_url,
            "cancel_url": cancel_url,
        }
        if customer:
            params["customer"] = customer
        try:
            session = await _client(self._config).v1.checkout.sessions.create_async(
                params,  # type: ignore[arg-type]
            )
        except stripe.StripeError as exc:
            raise StripeUnavailable(f"Stripe did not create the checkout: {_reason(exc)}") from exc
        session_id, url = _id_of(session.id), session.url
        if not session_id or not url:
            raise StripeUnavailable("Stripe answered without a checkout session URL")
        return CheckoutSessionRef(id=session_id, url=str(url))

    async def create_portal_session(self, *, customer: str, return_url: str) -> str:
        """A Stripe customer-portal URL (change or cancel the plan, update the card)."""
        try:
            portal = await _client(self._config).v1.billing_portal.sessions.create_async(
                {"customer": customer, "return_url": return_url}
            )
        except stripe.StripeError as exc:
            raise StripeUnavailable(f"Stripe did not open the portal: {_reason(exc)}") from exc
        if not portal.url:
            raise StripeUnavailable("Stripe answered without a portal URL")
        return str(portal.url)

    async def create_recharge_intent(
        self, payment: PaymentRecord, *, customer: str, payment_method: str
    ) -> IntentOutcome:
        """Charge a saved card off-session; a decline is an outcome, not an exception."""
        params: dict[str, Any] = {
            "amount": payment.amount_cents,
            "currency": payment.currency,
            "customer": customer,
            "payment_method": payment_method,
            "off_session": True,
            "confirm": True,
            "metadata": payment_metadata(payment),
            "description": f"0xinf auto-recharge ({payment.package_id})",
        }
        try:
            intent = await _client(self._config).v1.payment_intents.create_async(
                params,  # type: ignore[arg-type]
                options={"idempotency_key": f"oxinf-recharge-{payment.id}"},
            )
        except stripe.CardError as exc:
            body = exc.json_body or {}
            error = body.get("error", {}) if isinstance(body, dict) else {}
            failed_intent = error.get("payment_intent") or {}
            return IntentOutcome(
                id=failed_intent.get("id") if isinstance(failed_intent, dict) else None,
                status="failed",
                error_code=str(exc.code or "card_declined"),
            )
        except stripe.StripeError as exc:
            raise StripeUnavailable(f"Stripe did not create the charge: {_reason(exc)}") from exc
        return IntentOutcome(
            id=_id_of(intent.id),
            status=str(intent.status or "processing"),
            charge_id=_id_of(intent.latest_charge),
        )

    async def payment_method_of(self, payment_intent_id: str) -> str | None:
        try:
            intent = await _client(self._config).v1.payment_intents.retrieve_async(
                payment_intent_id
            )
        except stripe.StripeError as exc:
            raise StripeUnavailable(f"Stripe did not return the payment: {_reason(exc)}") from exc
        return _id_of(intent.payment_method)


def _reason(exc: stripe.StripeError) -> str:
    """Stripe's own wording, which names the field or state; never includes our key."""
    message = getattr(exc, "user_message", None) or str(exc) or type(exc).__name__
    return message[:300]


def gateway_for(
    api_key: str | None, api_base: str | None, *, timeout_s: float = 20.0
) -> StripeGateway | None:
    """None when no key is configured: callers answer "Stripe is not configured"."""
    if not api_key or not api_key.strip():
        return None
    return StripeGateway(
        StripeConfig(api_key=api_key.strip(), api_base=api_base or None, timeout_s=timeout_s)
    )
