"""Applying one verified Stripe event to our books, exactly once and in any order.

Each event is applied in one transaction that also stamps `stripe_events.processed_at`, so
an event's effect and the record that it happened commit together; a retried activity or a
re-delivered event finds it processed and does nothing.

Ordering rules (Stripe promises neither order nor single delivery):

1. A payment is credited at most once, under the ledger key `stripe:{checkout_session}` (or
   `stripe:{payment_intent}` for off-session recharges). `checkout.session.completed` with
   `payment_status == "paid"`, `checkout.session.async_payment_succeeded` and, for
   recharges, `payment_intent.succeeded` all lead to the same credit; whichever comes first
   wins and the others find it done.
2. Money beats state: a payment marked failed or expired is still credited if a paid event
   arrives later. Failure and expiry never override a credited payment.
3. A reversal (refund, dispute) only applies to a credited payment. One that arrives first
   is *deferred*: the event stays unprocessed and its workflow retries later, so the credit
   always lands before its reversal and nothing is lost. A reversal for a payment that ended
   failed or expired (never credited) has nothing to take back.
4. Refund amounts are cumulative (`charge.amount_refunded`), so a refund's target is
   credits * refunded / charged, minus what refunds already cover: reversed + uncollected
   minus what the payment's disputes hold (rule 6). A stale, smaller refund event changes
   nothing. Disputes and refunds add up, in either order, and the total never exceeds the
   credits the payment granted; a refund that needs more than is left takes it over from
   open disputes' holdings (an inquiry refunded before it closes), so a dispute won later
   cannot give back credits the refund keeps.
5. Reversals take only available credit; the shortfall is recorded on the payment as
   `uncollected_micros` and in the audit trail.
6. Disputes are booked per dispute id in `payments.disputes` (what each took, left
   uncollected, and how it closed). `charge.dispute.created` takes its share once per
   dispute (ledger key `stripe:dispute:{dispute}`), however often it is delivered.
   `charge.dispute.closed` closes a dispute once: `won` or `warning_closed` gives back
   exactly what that dispute took (a positive `reversal` entry keyed
   `stripe:dispute:{dispute}:reinstated`) and forgets what it left uncollected; `lost` or
   any other outcome keeps the reversal. A win that arrives before its creation is
   recorded, so the creation takes nothing; a loss that arrives first leaves the creation
   to take its share. Closing follows rule 3: it waits for the payment's credit.

Payments are found by our own id in the object's metadata first, then by session,
PaymentIntent or charge id; events about objects 0xinf did not create are ignored.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from domain.errors import NotFound
from domain.payments import credit_events, reversal_events
from domain.payments import repository as repo
from domain.payments.stripe_objects import EventResult, Handler
from domain.plans import events as plan_events
from domain.plans.catalog import PlanCatalog

HANDLERS: dict[str, Handler] = {**credit_events.HANDLERS, **reversal_events.HANDLERS}


async def apply_event(session: AsyncSession, event_id: str, plans: PlanCatalog) -> EventResult:
    """`plans` prices subscription events (`domain.plans.events`): tiers and allocations."""
    event = await repo.get_event(session, event_id, lock=True)
    if event is None:
        raise NotFound(f"stripe event {event_id} was never recorded")
    if event.processed_at is not None:
        return EventResult(result="already_processed")
    data = event.payload.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    handler = HANDLERS.get(event.type)
    plan_handler = plan_events.HANDLERS.get(event.type)
    subscription_checkout = event.type == "checkout.session.completed" and (
        isinstance(obj, dict) and obj.get("mode") == "subscription"
    )
    if subscription_checkout:
        plan_handler = plan_events.subscription_checkout_completed
    if plan_handler is not None and isinstance(obj, dict):
        result = await plan_handler(session, event, obj, plans)
    elif handler is None or not isinstance(obj, dict):
        result = EventResult(result="ignored", detail=f"{event.type} needs no action")
    else:
        result = await handler(session, event, obj)
    if result.result != "deferred":
        await repo.mark_event_processed(session, event_id)
    return result
