"""Stripe events that take credits back: refunds and disputes (created and closed);
ordering rules 3 to 6 of `domain.payments.events`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from domain.audit.service import SYSTEM, record
from domain.payments import repository as repo
from domain.payments.ledgering import post_reinstatement, post_reversal
from domain.payments.models import DisputeState, PaymentRecord, StripeEventRecord
from domain.payments.stripe_objects import (
    EventResult,
    Handler,
    Obj,
    ignored,
    int_field,
    our_id,
    ref,
)

UNCREDITED_FINAL = ("failed", "expired")
# Dispute outcomes that leave the money with the merchant: the dispute gives back what it took.
REINSTATING = ("won", "warning_closed")


async def _charge_refunded(
    session: AsyncSession, event: StripeEventRecord, obj: Obj
) -> EventResult:
    payment = await _payment_for_charge(session, obj, charge_id=ref(obj, "id"))
    if not isinstance(payment, PaymentRecord):
        return payment
    charged = int_field(obj, "amount") or payment.amount_cents
    refunded = min(int_field(obj, "amount_refunded") or 0, charged)
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
        charge_id=ref(obj, "id"),
        disputes=handover.disputes,
        handed_over=handover.moved_micros,
    )


async def _dispute_created(
    session: AsyncSession, event: StripeEventRecord, obj: Obj
) -> EventResult:
    payment = await _payment_for_charge(session, obj, charge_id=ref(obj, "charge"))
    if not isinstance(payment, PaymentRecord):
        return payment
    stripe_id = ref(obj, "id")
    dispute_id = stripe_id or event.id
    known = payment.disputes.get(dispute_id, DisputeState())
    if known.created:
        return ignored(f"dispute {dispute_id} was already applied")
    disputed = min(int_field(obj, "amount") or payment.amount_cents, payment.amount_cents)
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
        charge_id=ref(obj, "charge"),
        dispute=NamedDispute(dispute_id, state),
    )


async def _dispute_closed(session: AsyncSession, event: StripeEventRecord, obj: Obj) -> EventResult:
    """Settle one dispute: won (or an inquiry closed without funds withdrawn) gives back what
    it took and forgets what it left uncollected; any other outcome keeps the reversal."""
    payment = await _payment_for_charge(session, obj, charge_id=ref(obj, "charge"))
    if not isinstance(payment, PaymentRecord):
        return payment
    dispute_id = ref(obj, "id")
    if dispute_id is None:
        return ignored("a dispute without an id cannot be matched to what it took")
    outcome = _status(obj)
    known = payment.disputes.get(dispute_id, DisputeState())
    if known.outcome is not None:
        return ignored(f"dispute {dispute_id} already closed {known.outcome}")
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
        payment_id=our_id(obj),
        payment_intent_id=ref(obj, "payment_intent"),
        charge_id=charge_id,
        lock=True,
    )
    if payment is None:
        return EventResult(result="deferred", detail="no payment known for this charge yet")
    if not payment.credited:
        if payment.status in UNCREDITED_FINAL:
            return ignored("the payment was never credited, so there is nothing to take back")
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
    "charge.refunded": _charge_refunded,
    "charge.dispute.created": _dispute_created,
    "charge.dispute.closed": _dispute_closed,
}
