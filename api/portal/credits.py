"""The org's credit balance and ledger, in exact decimal credits and integer micros."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.auth import OrgCtx
from domain.billing_cycles.periods import next_month_start
from domain.inputs import Text, Timestamp
from domain.ledger import service as ledger
from domain.ledger.models import Entry
from domain.pricing.cost import MICROS_PER_CREDIT, format_credits
from edge.deps import ResourcesDep, SessionDep

router = APIRouter(prefix="/portal/v1/credits", tags=["portal: credits"])

EntryKind = Literal["purchase", "allocation", "bonus", "adjustment", "debit", "refund", "reversal"]


class BalanceOut(BaseModel):
    balance_micros: int
    available_micros: int
    held_micros: int
    balance: str
    available: str
    held: str
    tier: str
    monthly_allocation_micros: int
    monthly_allocation: str
    next_reset: datetime


class EntryOut(BaseModel):
    id: int
    kind: str
    amount_micros: int
    amount: str
    balance_after_micros: int
    balance_after: str
    reason: str | None
    reference: str | None
    api_key_id: str | None
    created_at: datetime

    @classmethod
    def of(cls, e: Entry) -> EntryOut:
        return cls(
            id=e.id,
            kind=e.kind,
            amount_micros=e.amount_micros,
            amount=format_credits(e.amount_micros),
            balance_after_micros=e.balance_after_micros,
            balance_after=format_credits(e.balance_after_micros),
            reason=e.reason,
            reference=e.reference,
            api_key_id=str(e.api_key_id) if e.api_key_id else None,
            created_at=e.created_at,
        )


class EntryPageOut(BaseModel):
    data: list[EntryOut]
    next_cursor: str | None


@router.get("/balance")
async def get_balance(ctx: OrgCtx, resources: ResourcesDep, session: SessionDep) -> BalanceOut:
    bal = await ledger.balance(session, ctx.org.id)
    allocation = resources.settings.tier_allocations.get(ctx.org.tier, 0) * MICROS_PER_CREDIT
    return BalanceOut(
        balance_micros=bal.balance_micros,
        available_micros=bal.available_micros,
        held_micros=bal.held_micros,
        balance=format_credits(bal.balance_micros),
        available=format_credits(bal.available_micros),
        held=format_credits(bal.held_micros),
        tier=ctx.org.tier,
        monthly_allocation_micros=allocation,
        monthly_allocation=format_credits(allocation),
        next_reset=next_month_start(datetime.now(UTC)),
    )


@router.get("/transactions")
async def list_transactions(
    ctx: OrgCtx,
    session: SessionDep,
    cursor: Text | None = Query(default=None, max_length=20),
    limit: int = Query(default=50, ge=1, le=200),
    kind: EntryKind | None = None,
    since: Timestamp | None = None,
    until: Timestamp | None = None,
) -> EntryPageOut:
    page = await ledger.list_entries(
        session, ctx.org.id, cursor=cursor, limit=limit, kind=kind, since=since, until=until
    )
    return EntryPageOut(data=[EntryOut.of(e) for e in page.entries], next_cursor=page.next_cursor)
