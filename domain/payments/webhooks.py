"""Receiving Stripe webhooks: verify, record once, and hand over to a workflow.

Start safety. The event row commits before its workflow starts, and the row is stamped
processed only by the workflow's own activity. So if this process dies between the commit
and the start, Stripe (which saw no 2xx) redelivers; the redelivery finds the row
unprocessed and starts the workflow then. Starting is idempotent in its own right: the
workflow id is `stripe-event-{id}`, a start while one runs attaches to it, and a start
after one completed is refused (its work is done) unless it failed, when it may run again
(`domain.ports.WorkflowStarter.start_stripe_event`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from domain.payments import repository as repo
from domain.payments.models import ReceivedEvent
from domain.payments.signature import InvalidSignature, verify

MAX_EVENT_ID = 100
MAX_EVENT_TYPE = 100


def parse_verified(
    payload: bytes,
    header: str | None,
    secrets: Sequence[str],
    *,
    tolerance_s: int,
    now: float | None = None,
) -> dict[str, Any]:
    """The event body, only if its signature holds; any doubt is a 400 with nothing stored."""
    verify(payload, header, secrets, tolerance_s=tolerance_s, now=now)
    try:
        event = json.loads(payload)
    except ValueError:
        raise InvalidSignature("signed payload is not JSON") from None
    if not isinstance(event, dict):
        raise InvalidSignature("signed payload is not a Stripe event")
    event_id, event_type = event.get("id"), event.get("type")
    if not isinstance(event_id, str) or not 0 < len(event_id) <= MAX_EVENT_ID:
        raise InvalidSignature("Stripe event has no usable id")
    if not isinstance(event_type, str) or not 0 < len(event_type) <= MAX_EVENT_TYPE:
        raise InvalidSignature("Stripe event has no usable type")
    return event


async def record_event(session: AsyncSession, event: dict[str, Any]) -> ReceivedEvent:
    """Insert the event id once (the caller commits); report whether work is still due."""
    new = await repo.insert_event(session, event["id"], event["type"], event)
    processed = False if new else await repo.event_processed(session, event["id"])
    return ReceivedEvent(id=event["id"], type=event["type"], new=new, processed=processed)
