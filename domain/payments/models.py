"""Plain records of payments, webhook events and org billing settings (they cross into
Temporal activities and JSON, so they are frozen pydantic models, not ORM rows)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class DisputeState(_Frozen):
    """One Stripe dispute's share of a payment, kept on `payments.disputes` by dispute id.

    `taken_micros` and `uncollected_micros` are the dispute's current claim on the payment's
    `reversed_micros` and `uncollected_micros` (a refund can take over part of an open
    dispute's claim, see `domain.payments.events`); `reinstated_micros` is what a won
    dispute gave back. `created` says `charge.dispute.created` has been applied, `outcome`
    is the status it closed with (won | lost | warning_closed | ...), None while open.
    """

    status: str | None = None
    created: bool = False
    outcome: str | None = None
    amount_cents: int | None = None
    taken_micros: int = 0
    uncollected_micros: int = 0
    reinstated_micros: int = 0
    to_refunds_micros: int = 0


class PaymentRecord(_Frozen):
    id: uuid.UUID
    org_id: uuid.UUID
    kind: str  # checkout | recharge
    checkout_session_id: str | None
    payment_intent_id: str | None
    charge_id: str | None
    package_id: str
    amount_cents: int
    currency: str
    credits_micros: int
    status: str
    ledger_entry_id: int | None
    reversed_micros: int
    uncollected_micros: int
    # defaulted so records serialized before the column existed still load
    disputes: dict[str, DisputeState] = Field(default_factory=dict)
    created_by: uuid.UUID | None
    created_at: datetime
    updated_at: datetime

    @property
    def credited(self) -> bool:
        return self.ledger_entry_id is not None

    @property
    def ledger_key(self) -> str | None:
        """`stripe:{checkout_session}` for checkouts (DESIGN.md §3), `stripe:{intent}` for
        off-session recharges, which have no session."""
        ref = self.checkout_session_id if self.kind == "checkout" else self.payment_intent_id
        return f"stripe:{ref}" if ref else None


class StripeEventRecord(_Frozen):
    id: str
    type: str
    payload: dict[str, Any]
    received_at: datetime
    processed_at: datetime | None


class BillingSettings(_Frozen):
    org_id: uuid.UUID
    stripe_customer_id: str | None = None
    default_payment_method: str | None = None
    auto_recharge: bool = False
    recharge_threshold_micros: int = 0
    recharge_package_id: str | None = None
    allocation_credits_override: int | None = None


class CheckoutStarted(_Frozen):
    payment: PaymentRecord
    url: str


class ReceivedEvent(_Frozen):
    """What the webhook learnt: whether this delivery inserted the event, and whether it
    still needs its workflow (unprocessed events are (re)started on every delivery)."""

    id: str
    type: str
    new: bool
    processed: bool
