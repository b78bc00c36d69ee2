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

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncSession

from domain.audit.service import SYSTEM, record
from domain.errors import DomainError, NotFound
from domain.payments import repository as repo
from domain.payments.ledgering import post_purchase, post_reinstatement, post_reversal
from domain.payments.models import DisputeState, PaymentRecord, StripeEventRecord

Result = Literal[
    "credited",
    "already_credited",
    "recorded",
    "failed",
    "expired",
    "reversed",
    "reinstated",
    "deferred",
    "ignored",
    "already_processed",
]
UNCREDITED_FINAL = ("failed", "expired")
# Dispute outcomes that leave the money with the merchant: the dispute gives back what it took.
REINSTATING = ("won", "warning_closed")


class PaymentMismatch(DomainError):
    """The event contradicts the payment we created (org, amount or currency): never credit
    it automatically; an operator has to look."""

    code = "payment_mismatch"


class EventResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    result: Result
    payment_id: uuid.UUID | None = None
    detail: str | None = None


Obj = dict[str, Any]
Handler = Callable[[AsyncSession, StripeEventRecord, Obj], Awaitable[EventResult]]


async def apply_event(session: AsyncSession, event_id: str) -> EventResult:
    event = await repo.get_event(session, event_id, lock=True)
    if event is None:
        raise NotFound(f"stripe event {event_id} was never recorded")
    if event.processed_at is not None:
        return EventResult(result="already_processed")
    data = event.payload.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    handler = HANDLERS.get(event.type)
    if handler is None or not isinstance(obj, dict):
        result = EventResult(result="ignored", detail=f"{event.type} needs no action")
    else:
        result = await handler(session, event, obj)
    if result.result != "deferred":
        await repo.mark_event_processed(session, event_id)
    return result


# --- reading Stripe objects defensively ----------------------------------------------------


def _ref(obj: Obj, key: str) -> str | None:
    """An id field that may be a plain id or an expanded object."""
    value = obj.get(key)
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def _int(obj: Obj, key: str) -> int | None:
    value = obj.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _our_id(obj: Obj) -> uuid.UUID | None:
    metadata = obj.get("metadata")
    raw = metadata.get("oxinf_payment_id") if isinstance(metadata, dict) else None
    try:
        return uuid.UUID(raw) if isinstance(raw, str) else None
    except ValueError:
        return None


def _ignored(why: str) -> EventResult:
    return EventResult(result="ignored", detail=why)


# --- crediting -----------------------------------------------------------------------------


async def fulfil(session: AsyncSession, payment: PaymentRecord) -> EventResult:
    """Credit a payment once (the caller holds its row lock)."""
    if payment.credited:
        return EventResult(result="already_credited", payment_id=payment.id)
    key = payment.ledger_key
    if key is None:  # a recharge whose intent id we have not learnt yet
        raise NotFound("payment has no Stripe reference to key its credit on yet")
    posting = await post_purchase(
        session, payment.org_id, payment.credits_micros, key=key, reference=f"payment:{payment.id}"
    )
    await repo.update_payment(
        session, payment.id, {"status": "paid", "ledger_entry_id": posting.entry.id}
    )
    await record(
        session, SYSTEM, "payments.credited", org_id=payment.org_id,
        target_type="payment", target_id=payment.id,
        after={
            "entry_id": posting.entry.id,
            "credits_micros": payment.credits_micros,
            "amount_cents": payment.amount_cents,
            "currency": payment.currency,
            "package_id": payment.package_id,
        },
    )  # fmt: skip
    return EventResult(result="credited", payment_id=payment.id)


async def record_refs(
    session: AsyncSession,
    payment: PaymentRecord,
    *,
    checkout_session_id: str | None = None,
    payment_intent_id: str | None = None,
    charge_id: str | None = None,
) -> PaymentRecord:
    """Fill in Stripe ids we did not know yet; ids already set are never overwritten."""
    values: dict[str, str] = {}
    if checkout_session_id and payment.checkout_session_id is None:
        values["checkout_session_id"] = checkout_session_id
    if payment_intent_id and payment.payment_intent_id is None:
        values["payment_intent_id"] = payment_intent_id
    if charge_id and payment.charge_id is None:
        values["charge_id"] = charge_id
    if not values:
        return payment
    updated = await repo.update_payment(session, payment.id, values)
    return updated or payment


def _check_session(payment: PaymentRecord, obj: Obj) -> None:
    session_id = _ref(obj, "id")
    if payment.checkout_session_id and session_id and payment.checkout_session_id != session_id:
        raise PaymentMismatch(f"payment {payment.id} belongs to another checkout session")
    org = obj.get("client_reference_id")
    if isinstance(org, str) and org and org != str(payment.org_id):
        raise PaymentMismatch(f"checkout {session_id} names another org than payment {payment.id}")
    total = _int(obj, "amount_total")
    if total is not None and total != payment.amount_cents:
        raise PaymentMismatch(
            f"checkout {session_id} charged {total}, expected {payment.amount_cents}"
        )
    currency = obj.get("currency")
    if isinstance(currency, str) and currency.lower() != payment.currency:
        raise PaymentMismatch(f"checkout {session_id} is in {currency}, not {payment.currency}")


async def _checkout_paid(session: AsyncSession, event: StripeEventRecord, obj: Obj) -> EventResult:
    payment = await repo.find_payment(
        session, payment_id=_our_id(obj), checkout_session_id=_ref(obj, "id"), lock=True
    )
    if payment is None or payment.kind != "checkout":
        return _ignored("not a checkout created by 0xinf")
    _check_session(payment, obj)
    payment = await record_refs(
        session,
        payment,
        checkout_session_id=_ref(obj, "id"),
        payment_intent_id=_ref(obj, "payment_intent"),
    )
    customer = _ref(obj, "customer")
    if customer:
        await repo.set_customer_if_missing(session, payment.org_id, customer)
    paid = event.type == "checkout.session.async_payment_succeeded"
    if not paid and obj.get("payment_status") != "paid":
        return EventResult(
            result="recorded", payment_id=payment.id, detail="awaiting asynchronous payment"
        )
    return await fulfil(session, payment)


async def _checkout_unpaid(
    session: AsyncSession, event: StripeEventRecord, obj: Obj
) -> EventResult:
    payment = await repo.find_payment(
        session, payment_id=_our_id(obj), checkout_session_id=_ref(obj, "id"), lock=True
    )
    if payment is None or payment.kind != "checkout":
        return _ignored("not a checkout created by 0xinf")
    if payment.credited:
        return _ignored("the payment was already credited")
    status = "expired" if event.type == "checkout.session.expired" else "failed"
    await repo.update_payment(session, payment.id, {"status": status}, from_statuses=("pending",))
    return EventResult(result=status, payment_id=payment.id)


async def _intent_succeeded(
    session: AsyncSession, event: StripeEventRecord, obj: Obj
) -> EventResult:
    payment = await repo.find_payment(
        session, payment_id=_our_id(obj), payment_intent_id=_ref(obj, "id"), lock=True
    )
    if payment is None:
        return _ignored("not a payment created by 0xinf")
    payment = await record_refs(
        session, payment, payment_intent_id=_ref(obj, "id"), charge_id=_ref(obj, "latest_charge")
    )
    if payment.kind != "recharge":
        return EventResult(
            result="recorded",
            payment_id=payment.id,
            detail="checkouts are credited by their checkout session events",
        )
    if _int(obj, "amount") not in (None, payment.amount_cents):
        raise PaymentMismatch(f"intent {_ref(obj, 'id')} amount differs from payment {payment.id}")
    return await fulfil(session, payment)


async def _intent_failed(session: AsyncSession, event: StripeEventRecord, obj: Obj) -> EventResult:
    payment = await repo.find_payment(
        session, payment_id=_our_id(obj), payment_intent_id=_ref(obj, "id"), lock=True
    )
    if payment is None or payment.kind != "recharge":
        return _ignored("checkout failures arrive as checkout session events")
    if payment.credited:
        return _ignored("the payment was already credited")
    await repo.update_payment(session, payment.id, {"status": "failed"}, from_statuses=("pending",))
    return EventResult(result="failed", payment_id=payment.id)


# --- reversals -----------------------------------------------------------------------------


async def _charge_refunded(
    session: AsyncSession, event: StripeEventRecord, obj: Obj
) -> EventResult:
    payment = await _payment_for_charge(session, obj, charge_id=_ref(obj, "id"))
    if not isinstance(payment, PaymentRecord):
        return payment
    charged = _int(obj, "amount") or payment.amount_cents
    refunded = min(_int(obj, "amount_refunded") or 0, charged)
    target = payment.credits_micros * refunded // charged
    covered = payment.reversed_micros + payment.uncollected_micros
    wanted = target - (covered - _claims(payment.disputes))
    room = payment.credits_micros - covered
    handover = _hand_over(payment.disputes, wanted - room)
    status = "refunded" if refunded >= charged and payment.status == "paid" else payment.status
    return await _reverse(
        session,
        event,
        payment,
        min(wanted, room),
        key=f"stripe:{event.id}:reversal",
        status=status,
        why="refund",
        charge_id=_ref(obj, "id"),
        disputes=handover.disputes,
        handed_over=handover.moved_micros,
    )


async def _dispute_created(
    session: AsyncSession, event: StripeEventRecord, obj: Obj
) -> EventResult:
    payment = await _payment_for_charge(session, obj, charge_id=_ref(obj, "charge"))
    if not isinstance(payment, PaymentRecord):
        return payment
    stripe_id = _ref(obj, "id")
    dispute_id = stripe_id or event.id
    known = payment.disputes.get(dispute_id, DisputeState())
    if known.created:
        return _ignored(f"dispute {dispute_id} was already applied")
    disputed = min(_int(obj, "amount") or payment.amount_cents, payment.amount_cents)
    state = known.model_copy(
        update={
            "created": True,
            "amount_cents": disputed,
            "status": known.status if known.outcome else _status(obj),
        }
    )
    if known.outcome in REINSTATING:
        await repo.update_payment(
            session, payment.id, {"disputes": _dump({**payment.disputes, dispute_id: state})}
        )
        return EventResult(
            result="recorded",
            payment_id=payment.id,
            detail=f"dispute {dispute_id} already closed {known.outcome}: nothing to take",
        )
    share = payment.credits_micros * disputed // payment.amount_cents
    room = payment.credits_micros - (payment.reversed_micros + payment.uncollected_micros)
    return await _reverse(
        session,
        event,
        payment,
        min(share, room),
        key=f"stripe:dispute:{stripe_id}" if stripe_id else f"stripe:{event.id}:reversal",
        status="disputed",
        why="dispute",
        charge_id=_ref(obj, "charge"),
        dispute=NamedDispute(dispute_id, state),
    )


async def _dispute_closed(session: AsyncSession, event: StripeEventRecord, obj: Obj) -> EventResult:
    """Settle one dispute: won (or an inquiry closed without funds withdrawn) gives back what
    it took and forgets what it left uncollected; any other outcome keeps the reversal."""
    payment = await _payment_for_charge(session, obj, charge_id=_ref(obj, "charge"))
    if not isinstance(payment, PaymentRecord):
        return payment
    dispute_id = _ref(obj, "id")
    if dispute_id is None:
        return _ignored("a dispute without an id cannot be matched to what it took")
    outcome = _status(obj)
    known = payment.disputes.get(dispute_id, DisputeState())
    if known.outcome is not None:
        return _ignored(f"dispute {dispute_id} already closed {known.outcome}")
    won = outcome in REINSTATING
    # What this dispute holds, never more than the payment has booked: a win gives back
    # exactly that and nothing else.
    back = min(known.taken_micros, payment.reversed_micros) if won else 0
    forgiven = min(known.uncollected_micros, payment.uncollected_micros) if won else 0
    state = known.model_copy(
        update={"outcome": outcome, "status": outcome, "reinstated_micros": back}
    )
    disputes = {**payment.disputes, dispute_id: state}
    values: dict[str, Any] = {"disputes": _dump(disputes)}
    if known.created and won:
        reversed_after = payment.reversed_micros - back
        uncollected_after = payment.uncollected_micros - forgiven
        values.update(
            reversed_micros=reversed_after,
            uncollected_micros=uncollected_after,
            status=_status_after(payment, disputes, reversed_after + uncollected_after),
        )
    entry = await post_reinstatement(
        session,
        payment.org_id,
        back,
        key=f"stripe:dispute:{dispute_id}:reinstated",
        reason=f"Stripe dispute {outcome} ({event.id})",
        reference=f"payment:{payment.id}",
    )
    await repo.update_payment(session, payment.id, values)
    await record(
        session, SYSTEM, "payments.dispute_won" if won else "payments.dispute_closed",
        org_id=payment.org_id, target_type="payment", target_id=payment.id,
        before={"reversed_micros": payment.reversed_micros,
                "uncollected_micros": payment.uncollected_micros, "status": payment.status},
        after={"event_id": event.id, "dispute_id": dispute_id, "outcome": outcome,
               "applied": known.created, "reinstated_micros": back,
               "forgiven_micros": forgiven, "entry_id": entry.id if entry else None,
               "status": values.get("status", payment.status)},
        reason=f"Stripe dispute {outcome}",
    )  # fmt: skip
    if not known.created:
        detail = f"dispute {dispute_id} closed {outcome} before its creation arrived"
        return EventResult(result="recorded", payment_id=payment.id, detail=detail)
    if not won:
        detail = f"dispute {dispute_id} closed {outcome}: the reversal stands"
        return EventResult(result="recorded", payment_id=payment.id, detail=detail)
    detail = f"reinstated {back} micros" + (f", forgave {forgiven} uncollected" if forgiven else "")
    return EventResult(result="reinstated", payment_id=payment.id, detail=detail)


def _status(obj: Obj) -> str:
    value = obj.get("status")
    return value if isinstance(value, str) and value else "unknown"


def _claims(disputes: dict[str, DisputeState]) -> int:
    """What the payment's disputes hold of its reversed + uncollected micros: everything
    they took or left uncollected, except what won disputes gave back."""
    return sum(
        d.taken_micros + d.uncollected_micros
        for d in disputes.values()
        if d.outcome not in REINSTATING
    )


@dataclass(frozen=True)
class Handover:
    """The dispute book after open disputes handed `moved_micros` of their claims to a refund."""

    disputes: dict[str, DisputeState]
    moved_micros: int


@dataclass(frozen=True)
class NamedDispute:
    id: str
    state: DisputeState


def _hand_over(disputes: dict[str, DisputeState], needed: int) -> Handover:
    """Move up to `needed` micros of open disputes' claims to a refund (taken before
    uncollected, so a win gives back less and the refund keeps real credits). No money
    moves: the payment's totals stay, only who holds them changes."""
    book = dict(disputes)
    moved = 0
    for dispute_id in sorted(book):
        d = book[dispute_id]
        if moved >= needed:
            break
        if not d.created or d.outcome is not None:
            continue
        taken = min(d.taken_micros, needed - moved)
        short = min(d.uncollected_micros, needed - moved - taken)
        if taken + short == 0:
            continue
        book[dispute_id] = d.model_copy(
            update={
                "taken_micros": d.taken_micros - taken,
                "uncollected_micros": d.uncollected_micros - short,
                "to_refunds_micros": d.to_refunds_micros + taken + short,
            }
        )
        moved += taken + short
    return Handover(book, moved)


def _status_after(payment: PaymentRecord, disputes: dict[str, DisputeState], covered: int) -> str:
    """A payment's status once a dispute is won: still disputed while another dispute is open
    or was lost, refunded if refunds cover all its credits, paid otherwise."""
    if any(d.created and d.outcome not in REINSTATING for d in disputes.values()):
        return "disputed"
    if covered - _claims(disputes) >= payment.credits_micros:
        return "refunded"
    return "paid"


def _dump(disputes: dict[str, DisputeState]) -> dict[str, Any]:
    return {k: v.model_dump() for k, v in disputes.items()}


async def _payment_for_charge(
    session: AsyncSession, obj: Obj, *, charge_id: str | None
) -> PaymentRecord | EventResult:
    payment = await repo.find_payment(
        session,
        payment_id=_our_id(obj),
        payment_intent_id=_ref(obj, "payment_intent"),
        charge_id=charge_id,
        lock=True,
    )
    if payment is None:
        return EventResult(result="deferred", detail="no payment known for this charge yet")
    if not payment.credited:
        if payment.status in UNCREDITED_FINAL:
            return _ignored("the payment was never credited, so there is nothing to take back")
        return EventResult(
            result="deferred", payment_id=payment.id, detail="waiting for the credit to land"
        )
    return payment


async def _reverse(
    session: AsyncSession,
    event: StripeEventRecord,
    payment: PaymentRecord,
    wanted: int,
    *,
    key: str,
    status: str,
    why: str,
    charge_id: str | None,
    dispute: NamedDispute | None = None,
    disputes: dict[str, DisputeState] | None = None,
    handed_over: int = 0,
) -> EventResult:
    """Take `wanted` (clamped to available credit) under `key` and book it on the payment.

    `dispute` is the dispute this reversal is for: it is recorded holding what was taken and
    left uncollected. `disputes` replaces the payment's dispute book (a refund that took
    `handed_over` micros over from open disputes)."""
    reversal = await post_reversal(
        session,
        payment.org_id,
        wanted,
        key=key,
        reason=f"Stripe {why} ({event.id})",
        reference=f"payment:{payment.id}",
    )
    entry, taken = reversal.entry, reversal.taken_micros
    short = max(wanted, 0) - taken
    values: dict[str, Any] = {
        "status": status,
        "reversed_micros": payment.reversed_micros + taken,
        "uncollected_micros": payment.uncollected_micros + short,
    }
    book = dict(payment.disputes if disputes is None else disputes)
    if dispute is not None:
        book[dispute.id] = dispute.state.model_copy(
            update={"taken_micros": taken, "uncollected_micros": short}
        )
    if book != payment.disputes:
        values["disputes"] = _dump(book)
    if charge_id and payment.charge_id is None:
        values["charge_id"] = charge_id
    await repo.update_payment(session, payment.id, values)
    if wanted > 0 or handed_over > 0:
        after: dict[str, Any] = {
            "event_id": event.id, "wanted_micros": wanted, "reversed_micros": taken,
            "uncollected_micros": short, "entry_id": entry.id if entry else None,
            "status": status,
        }  # fmt: skip
        if dispute is not None:
            after["dispute_id"] = dispute.id
        if handed_over:
            after["from_disputes_micros"] = handed_over
        await record(
            session, SYSTEM, f"payments.{why}", org_id=payment.org_id,
            target_type="payment", target_id=payment.id,
            before={"reversed_micros": payment.reversed_micros,
                    "uncollected_micros": payment.uncollected_micros, "status": payment.status},
            after=after,
            reason=f"Stripe {why}",
        )  # fmt: skip
    detail = f"reversed {taken} micros" + (f", {short} uncollected" if short else "")
    if handed_over:
        detail += f", {handed_over} taken over from open disputes"
    return EventResult(result="reversed", payment_id=payment.id, detail=detail)


HANDLERS: dict[str, Handler] = {
    "checkout.session.completed": _checkout_paid,
    "checkout.session.async_payment_succeeded": _checkout_paid,
    "checkout.session.async_payment_failed": _checkout_unpaid,
    "checkout.session.expired": _checkout_unpaid,
    "payment_intent.succeeded": _intent_succeeded,
    "payment_intent.payment_failed": _intent_failed,
    "charge.refunded": _charge_refunded,
    "charge.dispute.created": _dispute_created,
    "charge.dispute.closed": _dispute_closed,
}
