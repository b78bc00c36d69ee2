"""Monthly credit allocations: each org's tier allowance, once per period.

The ledger key `alloc:{org}:{YYYY-MM}` is the whole guarantee: a second run for the same
period (a retry, a manual trigger, a schedule backfill) replays the key and moves nothing.
Credits are added, never reset, so whatever an org did not use rolls over.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncSession

from domain.billing_cycles import repository as repo
from domain.billing_cycles.periods import parse_period
from domain.errors import InvalidField, NotFound
from domain.ledger import service as ledger
from domain.ledger.models import Posting
from domain.pricing.cost import MICROS_PER_CREDIT

ALLOCATION_ACTOR = "system:allocations"
MAX_BATCH = 5_000


class AllocationBatchResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    orgs: int
    credited: int
    already: int
    skipped: int
    credited_micros: int
    last_org_id: uuid.UUID | None


def allocation_key(org_id: uuid.UUID, period: str) -> str:
    return f"alloc:{org_id}:{period}"


def allocation_credits(tier: str, override: int | None, tiers: Mapping[str, int]) -> int:
    """Whole credits: a contract override (enterprise) wins over the tier's allowance."""
    return override if override is not None else tiers.get(tier, 0)


async def allocate_batch(
    session: AsyncSession,
    period: str,
    *,
    after: uuid.UUID | None,
    limit: int,
    tiers: Mapping[str, int],
) -> AllocationBatchResult:
    """Allocate to the next `limit` orgs after `after`, in id order (so accounts are locked
    in a stable order and a concurrent run cannot deadlock with this one)."""
    parse_period(period)
    if not 0 < limit <= MAX_BATCH:
        raise InvalidField(f"limit must be between 1 and {MAX_BATCH}", param="limit")
    rows = await repo.orgs_page(session, after=after, limit=limit)
    credited = already = skipped = moved = 0
    for row in rows:
        credits = allocation_credits(row.tier, row.override_credits, tiers)
        if credits <= 0 or row.subscribed:
            skipped += 1
            continue
        amount = credits * MICROS_PER_CREDIT
        key = allocation_key(row.org_id, period)
        try:
            posting = await _credit(session, row.org_id, amount, key, period)
        except NotFound:  # an org without its account yet: create it, then allocate
            await ledger.ensure_account(session, row.org_id)
            posting = await _credit(session, row.org_id, amount, key, period)
        if posting.replayed:
            already += 1
        else:
            credited += 1
            moved += amount
    return AllocationBatchResult(
        orgs=len(rows),
        credited=credited,
        already=already,
        skipped=skipped,
        credited_micros=moved,
        last_org_id=rows[-1].org_id if rows else None,
    )


async def _credit(
    session: AsyncSession, org_id: uuid.UUID, amount: int, key: str, period: str
) -> Posting:
    return await ledger.credit(
        session,
        org_id,
        amount,
        kind="allocation",
        key=key,
        actor=ALLOCATION_ACTOR,
        reason=f"monthly allocation {period}",
        reference=f"alloc:{period}",
    )
