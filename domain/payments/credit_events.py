"""Stripe events that credit a payment: checkout sessions and (for recharges) payment
intents, paid, failed or expired; ordering rules 1 and 2 of `domain.payments.events`."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from domain.audit.service import SYSTEM, record
from domain.errors import NotFound
from domain.payments import repository as repo
from domain.payments.ledgering import post_purchase
from domain.payments.models import PaymentRecord, StripeEventRecord
from domain.payments.stripe_objects import (
    EventResult,
    Handler,
    Obj,
    PaymentMismatch,
    ignored,
    int_field,
    our_id,
    ref,
)


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
    session_id = ref(obj, "id")
    if payment.checkout_session_id and session_id and payment.checkout_session_id != session_id:
        raise PaymentMismatch(f"payment {payment.id} belongs to another checkout session")
    org = obj.get("client_reference_id")
    if isinstance(org, str) and org and org != str(payment.org_id):
        raise PaymentMismatch(f"checkout {session_id} names another org than payment {payment.id}")
    total = int_field(obj, "amount_total")
    if total is not None and total != payment.amount_cents:
        raise PaymentMismatch(
            f"checkout {session_id} charged {total}, expected {payment.amount_cents}"
        )
    currency = obj.get("currency")
    if isinstance(currency, str) and currency.lower() != payment.currency:
        raise PaymentMismatch(f"checkout {session_id} is in {currency}, not {payment.currency}")


async def _checkout_paid(session: AsyncSession, event: StripeEventRecord, obj: Obj) -> EventResult:
    payment = await repo.find_payment(
        session, payment_id=our_id(obj), checkout_session_id=ref(obj, "id"), lock=True
    )
    if payment is None or payment.kind != "checkout":
        return ignored("not a checkout created by 0xinf")
    _check_session(payment, obj)
    payment = await record_refs(
        session,
        payment,
        checkout_session_id=ref(obj, "id"),
        payment_intent_id=ref(obj, "payment_intent"),
    )
    customer = ref(obj, "customer")
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
        session, payment_id=our_id(obj), checkout_session_id=ref(obj, "id"), lock=True
    )
    if payment is None or payment.kind != "checkout":
        return ignored("not a checkout created by 0xinf")
    if payment.credited:
        return ignored("the payment was already credited")
    status = "expired" if event.type == "checkout.session.expired" else "failed"
    await repo.update_payment(session, payment.id, {"status": status}, from_statuses=("pending",))
    return EventResult(result=status, payment_id=payment.id)


async def _intent_succeeded(
    session: AsyncSession, event: StripeEventRecord, obj: Obj
) -> EventResult:
    payment = await repo.find_payment(
        session, payment_id=our_id(obj), payment_intent_id=ref(obj, "id"), lock=True
    )
    if payment is None:
        return ignored("not a payment created by 0xinf")
    payment = await record_refs(
        session, payment, payment_intent_id=ref(obj, "id"), charge_id=ref(obj, "latest_charge")
    )
    if payment.kind != "recharge":
        return EventResult(
            result="recorded",
            payment_id=payment.id,
            detail="checkouts are credited by their checkout session events",
        )
    if int_field(obj, "amount") not in (None, payment.amount_cents):
        raise PaymentMismatch(f"intent {ref(obj, 'id')} amount differs from payment {payment.id}")
    return await fulfil(session, payment)


async def _intent_failed(session: AsyncSession, event: StripeEventRecord, obj: Obj) -> EventResult:
    payment = await repo.find_payment(
        session, payment_id=our_id(obj), payment_intent_id=ref(obj, "id"), lock=True
    )
    if payment is None or payment.kind != "recharge":
        return ignored("checkout failures arrive as checkout session events")
    if payment.credited:
        return ignored("the payment was already credited")
    await repo.update_payment(session, payment.id, {"status": "failed"}, from_statuses=("pending",))
    return EventResult(result="failed", payment_id=payment.id)


HANDLERS: dict[str, Handler] = {
    "checkout.session.completed": _checkout_paid,
    "checkout.session.async_payment_succeeded": _checkout_paid,
    "checkout.session.async_payment_failed": _checkout_unpaid,
    "checkout.session.expired": _checkout_unpaid,
    "payment_intent.succeeded": _intent_succeeded,
    "payment_intent.payment_failed": _intent_failed,
}
