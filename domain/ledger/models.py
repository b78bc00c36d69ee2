"""What the ledger hands back: plain, serialisable facts (they cross into Temporal and JSON).

Results of money-moving calls carry `replayed`, so a caller retrying with the same
idempotency key can tell "this already happened" from "this happened now" (for example to
avoid sending a second receipt), while getting the same numbers either way.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from domain.budgets.models import BudgetClaim

CREDIT_KINDS = ("purchase", "allocation", "bonus", "adjustment")
REASON_REQUIRED_KINDS = ("bonus", "adjustment")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class Entry(_Frozen):
    id: int
    org_id: uuid.UUID
    kind: str
    amount_micros: int
    balance_after_micros: int
    idempotency_key: str
    actor: str
    reason: str | None
    api_key_id: uuid.UUID | None
    hold_id: uuid.UUID | None
    reference: str | None
    refunds_entry_id: int | None
    created_at: datetime


class HoldState(_Frozen):
    id: uuid.UUID
    org_id: uuid.UUID
    api_key_id: uuid.UUID | None
    amount_micros: int
    key_budget_micros: int
    status: str
    idempotency_key: str
    reference: str | None
    settled_micros: int | None
    uncollected_micros: int
    expires_at: datetime
    created_at: datetime
    resolved_at: datetime | None
    budget_reservations: list[BudgetClaim] | None = None

    @property
    def budgets(self) -> list[BudgetClaim]:
        return self.budget_reservations or []


class Posting(_Frozen):
    """Result of credit, adjust and refund."""

    entry: Entry
    replayed: bool


class Reservation(_Frozen):
    hold: HoldState
    replayed: bool


class Settlement(_Frozen):
    """`released_micros` is the part of the hold not charged: amount - min(charged, amount)."""

    hold_id: uuid.UUID
    charged_micros: int
    uncollected_micros: int
    released_micros: int
    entry_id: int | None
    replayed: bool


class Release(_Frozen):
    """Result of void: the hold's final status and what it gave back to available."""

    hold_id: uuid.UUID
    status: str
    released_micros: int
    replayed: bool


class SweepResult(_Frozen):
    expired: int
    released_micros: int


class Balance(_Frozen):
    org_id: uuid.UUID
    balance_micros: int
    available_micros: int
    held_micros: int


class EntryPage(_Frozen):
    entries: list[Entry]
    next_cursor: str | None
