"""An org's credit account: created once, read as balance, available and held."""

from __future__ import annotations

import uuid

from domain.errors import NotFound
from domain.ledger import repository as repo
from domain.ledger.models import Balance
from schema.db import Executor


async def account_missing(session: Executor, org_id: uuid.UUID) -> bool:
    return await repo.get_account(session, org_id) is None


async def ensure_account(session: Executor, org_id: uuid.UUID) -> Balance:
    """Create the org's credit account if needed (org creation calls this; repeats are free)."""
    await repo.insert_account(session, org_id)
    return await balance(session, org_id)


async def balance(session: Executor, org_id: uuid.UUID) -> Balance:
    found = await repo.get_account(session, org_id)
    if found is None:
        raise NotFound("credit account not found")
    return Balance(
        org_id=org_id,
        balance_micros=found.balance_micros,
        available_micros=found.available_micros,
        held_micros=found.balance_micros - found.available_micros,
    )
