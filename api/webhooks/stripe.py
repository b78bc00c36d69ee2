"""`POST /webhooks/stripe`: verify, record once, start the event's workflow.

The signature is checked on the raw bytes before anything is parsed or stored, so a forged
or replayed delivery gets a 400 and leaves no trace. See `domain.payments.webhooks` for why
the workflow start is safe even if this process dies right after the commit.
"""

from __future__ import annotations

import logging
from functools import partial

from fastapi import APIRouter, Request
from pydantic import BaseModel

from config.runtime import Resources
from config.settings import Settings
from domain.errors import ServiceUnavailable
from domain.payments.webhooks import parse_verified, record_event
from edge.deps import ResourcesDep, SessionDep
from schema.unit_of_work import after_commit

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


async def start_processing(resources: Resources, event_id: str) -> None:
    try:
        await resources.workflows.start_stripe_event(event_id)
    except Exception as exc:  # recorded but not started: a non-2xx makes Stripe redeliver
        log.warning("stripe event workflow not started", extra={"event_id": event_id})
        raise ServiceUnavailable(
            "event recorded but processing could not start yet; it will be retried"
        ) from exc


@router.post("/webhooks/stripe")
async def stripe_webhook(
    request: Request, resources: ResourcesDep, session: SessionDep
) -> WebhookAck:
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
    received = await record_event(session, event)
    if not received.processed:
        # After the commit: the event row is durable before its workflow may look for it.
        after_commit(session, partial(start_processing, resources, received.id))
    return WebhookAck(received=True, id=received.id, duplicate=not received.new)
