"""`POST /webhooks/stripe`: verify, record once, start the event's workflow.

The signature is checked on the raw bytes before anything is parsed or stored, so a forged
or replayed delivery gets a 400 and leaves no trace. See `domain.payments.webhooks` for why
the workflow start is safe even if this process dies right after the commit.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from pydantic import BaseModel

from config.settings import Settings
from domain.errors import ServiceUnavailable
from domain.payments.webhooks import parse_verified, record_event
from edge.deps import ResourcesDep

log = logging.getLogger("oxinf.payments")

router = APIRouter(tags=["webhooks"])


class WebhookAck(BaseModel):
    received: bool
    id: str
    duplicate: bool


def webhook_secrets(settings: Settings) -> list[str]:
    raw = (
        settings.stripe_webhook_secret.get_secret_value() if settings.stripe_webhook_secret else ""
    )
    return [s.strip() for s in raw.split(",") if s.strip()]


@router.post("/webhooks/stripe")
async def stripe_webhook(request: Request, resources: ResourcesDep) -> WebhookAck:
    settings = resources.settings
    secrets = webhook_secrets(settings)
    if not secrets:
        raise ServiceUnavailable(
            "Stripe webhooks are not configured on this server (set OXINF_STRIPE_WEBHOOK_SECRET)"
        )
    payload = await request.body()
    event = parse_verified(
        payload,
        request.headers.get("stripe-signature"),
        secrets,
        tolerance_s=settings.stripe_webhook_tolerance_s,
    )
    async with resources.sessions.begin() as session:
        received = await record_event(session, event)
    if not received.processed:
        try:
            await resources.workflows.start_stripe_event(received.id)
        except Exception as exc:  # recorded but not started: a non-2xx makes Stripe redeliver
            log.warning("stripe event workflow not started", extra={"event_id": received.id})
            raise ServiceUnavailable(
                "event recorded but processing could not start yet; it will be retried"
            ) from exc
    return WebhookAck(received=True, id=received.id, duplicate=not received.new)
