"""How payments move credits: one purchase entry per payment, clamped reversal entries, and
reinstatements that give a won dispute's reversal back.

Reversals (refunds and disputes) are the one ledger movement the ledger service does not
offer, because unlike an adjustment they must never fail: the money already left through
Stripe, so we take what the org has *available* (never what is held for in-flight
requests) and report the rest as uncollected for ops. They follow the ledger's own
discipline: guarded account update, then the entry claims its idempotency key, compensating
if the key turns out to be taken. Callers hold the payment row lock, so the payment's own
bookkeeping (`reversed_micros`, `uncollected_micros`, `disputes`) cannot race.

A reinstatement is a *positive* `reversal` entry: it reverses (part of) an earlier reversal,
so an org's reversal entries net to what Stripe finally kept. The other kinds do not fit:
`refund` is the ledger's credit-back of one `debit` (it carries `refunds_entry_id`, at most
one per debit, and counts against key budgets), `adjustment` and `bonus` are manual changes
that need a human actor and reason, and `purchase` would count the same payment twice.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from domain.errors import Conflict, DomainError, NotFound
from domain.ledger import repository as ledger_repo
from domain.ledger import service as ledger
from domain.ledger.models import Entry, Posting

STRIPE_ACTOR = "system:stripe"


class LedgerKeyMismatch(DomainError):
    """A payment's ledger key is held by an entry that is not this payment's: a data fault
    for ops, never a replay to paper over."""

    code = "conflict"


@dataclass(frozen=True)
class Reversal:
    """What a reversal took from available credit, and its entry (None when it took nothing)."""

    entry: Entry | None
    taken_micros: int


NOTHING_TAKEN = Reversal(None, 0)


async def post_purchase(
    session: AsyncSession, org_id: uuid.UUID, amount_micros: int, *, key: str, reference: str
) -> Posting:
    await ledger.ensure_account(session, org_id)
    return await ledger.credit(
        session,
        org_id,
        amount_micros,
        kind="purchase",
        key=key,
        actor=STRIPE_ACTOR,
        reason="Stripe payment",
        reference=reference,
    )


async def post_reversal(
    session: AsyncSession,
    org_id: uuid.UUID,
    wanted_micros: int,
    *,
    key: str,
    reason: str,
    reference: str,
) -> Reversal:
    """Take up to `wanted_micros` from available credit.

    A replay returns the first entry, but only if it is this org's reversal for this payment:
    ledger keys are global, and an entry of another org or payment under the same key would
    let this payment's reversal vanish without reaching its own ledger.
    """
    if wanted_micros <= 0:
        return NOTHING_TAKEN
    previous = await ledger_repo.entry_by_key(session, key)
    if previous is not None:
        if (previous.org_id, previous.kind, previous.reference) != (org_id, "reversal", reference):
            raise LedgerKeyMismatch(
                f"ledger key {key} belongs to another org or payment; reversal not booked"
            )
        return Reversal(previous, -previous.amount_micros)
    account = await ledger_repo.get_account(session, org_id, lock=True)
    if account is None:
        raise NotFound("credit account not found")
    take = min(wanted_micros, account.available_micros)
    if take <= 0:
        return NOTHING_TAKEN
    moved = await ledger_repo.move_account(
        session, org_id, balance_delta=-take, available_delta=-take, guard_available=True
    )
    if moved is None:  # pragma: no cover - the account row is locked by us
        raise Conflict("credit account changed concurrently; retry")
    entry = await _reversal_entry(
        session, org_id, -take, moved.balance_micros, key, reason, reference
    )
    return Reversal(entry, take)


async def post_reinstatement(
    session: AsyncSession,
    org_id: uuid.UUID,
    amount_micros: int,
    *,
    key: str,
    reason: str,
    reference: str,
) -> Entry | None:
    """Give back `amount_micros` a reversal took, once per `key` (None when nothing to give).

    A credit cannot fail for lack of funds, so there is no guard; a replay with the same key
    returns the first entry and moves nothing.
    """
    if amount_micros <= 0:
        return None
    previous = await ledger_repo.entry_by_key(session, key)
    if previous is not None:
        if (previous.org_id, previous.kind, previous.reference) != (org_id, "reversal", reference):
            raise LedgerKeyMismatch(
                f"ledger key {key} belongs to another org or payment; reinstatement not booked"
            )
        if previous.amount_micros != amount_micros:
            raise Conflict("reinstatement key already used for a different amount")
        return previous
    moved = await ledger_repo.move_account(
        session, org_id, balance_delta=amount_micros, available_delta=amount_micros
    )
    if moved is None:
        raise NotFound("credit account not found")
    return await _reversal_entry(
        session, org_id, amount_micros, moved.balance_micros, key, reason, reference
    )


async def _reversal_entry(
    session: AsyncSession,
    org_id: uuid.UUID,
    amount_micros: int,
    balance_after: int,
    key: str,
    reason: str,
    reference: str,
) -> Entry:
    """Books an account move already made as a `reversal` entry; if the key turns out to be
    taken, undoes the move and raises `Conflict` (the caller's transaction retries)."""
    entry = await ledger_repo.insert_entry(
        session,
        {
            "org_id": org_id,
            "kind": "reversal",
            "amount_micros": amount_micros,
            "balance_after_micros": balance_after,
            "idempotency_key": key,
            "actor": STRIPE_ACTOR,
            "reason": reason,
            "reference": reference,
        },
    )
    if entry is None:
        await ledger_repo.move_account(
            session, org_id, balance_delta=-amount_micros, available_delta=-amount_micros
        )
        raise Conflict(f"ledger key {key} already used; retry")
    return entry
