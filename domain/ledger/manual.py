"""Manual credit changes by people: always with a reason, an actor and an audit event.

The audit event is written in the same transaction as the ledger entry, so a change and
its record commit together; a replayed idempotency key writes neither again.
"""

from __future__ import annotations

import uuid
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from domain.audit.service import Actor, record
from domain.errors import InvalidField, NotFound
from domain.identity import repository as identity_repo
from domain.ledger import service as ledger
from domain.ledger.models import Posting

ManualKind = Literal["adjustment", "bonus"]


async def grant(
    session: AsyncSession,
    actor: Actor,
    org_id: uuid.UUID,
    amount_micros: int,
    *,
    kind: ManualKind,
    reason: str,
    key: str,
) -> Posting:
    if not reason or not reason.strip():
        raise InvalidField("a reason is required for manual credit changes", param="reason")
    if await identity_repo.org_by_id(session, org_id) is None:
        raise NotFound("no such org")
    if kind == "bonus":
        posting = await ledger.credit(
            session, org_id, amount_micros, kind="bonus", key=key, actor=actor.label, reason=reason
        )
    else:
        posting = await ledger.adjust(
            session, org_id, amount_micros, key=key, actor=actor.label, reason=reason
        )
    if not posting.replayed:
        await record(
            session, actor, f"credits.{kind}", org_id=org_id,
            target_type="credit_account", target_id=org_id,
            after={
                "amount_micros": amount_micros,
                "entry_id": posting.entry.id,
                "balance_after_micros": posting.entry.balance_after_micros,
            },
            reason=reason.strip(),
        )  # fmt: skip
    return posting
