"""Operator credit adjustments and bonuses, with a mandatory reason."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Request, status
from pydantic import BaseModel, Field

from api.auth import Operator
from api.portal.credits import EntryOut
from domain.audit.service import Actor
from domain.inputs import Int64, Text
from domain.ledger.manual import grant
from domain.pricing.cost import format_credits
from edge.deps import SessionDep, client_ip

router = APIRouter(prefix="/admin/v1/orgs", tags=["admin: credits"])


class GrantIn(BaseModel):
    amount_micros: Int64 = Field(description="signed for adjustments; positive for bonuses")
    kind: Literal["adjustment", "bonus"]
    reason: Text = Field(min_length=1, max_length=1000)


class GrantOut(BaseModel):
    entry: EntryOut
    replayed: bool
    balance_micros: int
    balance: str


@router.post("/{org_id}/credits", status_code=status.HTTP_201_CREATED)
async def grant_credits(
    org_id: uuid.UUID,
    body: GrantIn,
    request: Request,
    operator: Operator,
    session: SessionDep,
    idempotency_key: Annotated[Text | None, Header(max_length=150)] = None,
) -> GrantOut:
    key = f"admin:{idempotency_key or uuid.uuid4()}"
    actor = Actor("operator", operator.id, client_ip(request))
    posting = await grant(
        session, actor, org_id, body.amount_micros, kind=body.kind, reason=body.reason, key=key
    )
    after = posting.entry.balance_after_micros
    return GrantOut(
        entry=EntryOut.of(posting.entry),
        replayed=posting.replayed,
        balance_micros=after,
        balance=format_credits(after),
    )
