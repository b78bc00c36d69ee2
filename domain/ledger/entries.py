"""Ledger entries posted directly: credits, adjustments and refunds, and the entry list.

Each posting moves the account with a guarded update, then claims its idempotency key with
the entry itself, compensating if the key was taken (`domain.ledger.service`).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from domain.budgets import counters as budget_counters
from domain.errors import Conflict, InvalidRequest, NotFound
from domain.inputs import INT64_MAX
from domain.ledger import repository as repo
from domain.ledger.checks import (
    MAX_PAGE,
    clean_reason,
    require_actor,
    require_key,
    require_reference,
)
from domain.ledger.errors import InsufficientCredits
from domain.ledger.models import CREDIT_KINDS, REASON_REQUIRED_KINDS, EntryPage, Posting
from domain.pricing.cost import format_credits
from schema.db import Executor
from schema.ledger import ENTRY_KINDS


async def credit(
    session: Executor,
    org_id: uuid.UUID,
    amount_micros: int,
    *,
    kind: str,
    key: str,
    actor: str,
    reason: str | None = None,
    reference: str | None = None,
) -> Posting:
    """Add credit (purchase, allocation, bonus or a positive adjustment)."""
    if kind not in CREDIT_KINDS:
        raise InvalidRequest(f"kind must be one of {', '.join(CREDIT_KINDS)}", param="kind")
    if amount_micros <= 0:
        raise InvalidRequest("amount must be positive", param="amount_micros")
    return await _post(session, org_id, amount_micros, kind, key, actor, reason, reference)


async def adjust(
    session: Executor,
    org_id: uuid.UUID,
    amount_micros: int,
    *,
    key: str,
    actor: str,
    reason: str,
    reference: str | None = None,
) -> Posting:
    """A manual signed correction; a negative one may only take what is available (not held)."""
    if amount_micros == 0:
        raise InvalidRequest("an adjustment must not be zero", param="amount_micros")
    return await _post(session, org_id, amount_micros, "adjustment", key, actor, reason, reference)


async def _post(
    session: Executor,
    org_id: uuid.UUID,
    amount: int,
    kind: str,
    key: str,
    actor: str,
    reason: str | None,
    reference: str | None,
) -> Posting:
    require_key(key, entry=True)
    require_actor(actor)
    require_reference(reference)
    reason = clean_reason(reason, required=kind in REASON_REQUIRED_KINDS)
    moved = await repo.move_account(
        session, org_id, balance_delta=amount, available_delta=amount, guard_available=amount < 0
    )
    if moved is None:
        replay = await _replayed_entry(session, key, org_id, kind, amount)
        if replay is not None:
            return replay
        account = await repo.get_account(session, org_id)
        if account is None:
            raise NotFound("credit account not found")
        if amount > 0:  # the account's state refuses it, not the amount's form: 409
            raise Conflict(
                f"this would take the balance past {format_credits(INT64_MAX)} credits, the most"
                " an account can hold; nothing was credited",
                param="amount_micros",
            )
        raise InsufficientCredits("").with_amounts(
            -amount,
            account.available_micros,
            message=f"an adjustment may not take more than the available credit: it takes "
            f"{format_credits(-amount)} credits and {format_credits(account.available_micros)}"
            " are available",
        )
    entry = await repo.insert_entry(
        session,
        {
            "org_id": org_id,
            "kind": kind,
            "amount_micros": amount,
            "balance_after_micros": moved.balance_micros,
            "idempotency_key": key,
            "actor": actor,
            "reason": reason,
            "reference": reference,
        },
    )
    if entry is not None:
        return Posting(entry=entry, replayed=False)
    await repo.move_account(session, org_id, balance_delta=-amount, available_delta=-amount)
    replay = await _replayed_entry(session, key, org_id, kind, amount)
    if replay is None:
        raise Conflict("idempotency key already used for a different operation")
    return replay


async def _replayed_entry(
    session: Executor, key: str, org_id: uuid.UUID, kind: str, amount: int
) -> Posting | None:
    """The first result for `key`, or Conflict if the key was used for something else."""
    found = await repo.entry_by_key(session, key)
    if found is None:
        return None
    if (found.org_id, found.kind, found.amount_micros) != (org_id, kind, amount):
        raise Conflict("idempotency key already used for a different operation")
    return Posting(entry=found, replayed=True)


async def refund(
    session: Executor,
    entry_id: int,
    *,
    key: str,
    actor: str,
    reason: str,
    org_id: uuid.UUID | None = None,
) -> Posting:
    """Credit a debit back in full, at most once; `org_id` confines it to one tenant."""
    require_key(key, entry=True)
    require_actor(actor)
    cleaned = clean_reason(reason, required=True)
    debit = await repo.entry_by_id(session, entry_id, org_id=org_id, lock=True)
    if debit is None:
        raise NotFound("ledger entry not found")
    if debit.kind != "debit":
        raise InvalidRequest("only debits can be refunded", param="entry_id")
    previous = await repo.refund_of(session, entry_id)
    if previous is not None:
        if previous.idempotency_key != key:
            raise Conflict("this debit was already refunded")
        return Posting(entry=previous, replayed=True)
    amount = -debit.amount_micros
    moved = await repo.move_account(
        session, debit.org_id, balance_delta=amount, available_delta=amount
    )
    if moved is None:  # pragma: no cover - the entry's FK keeps the account alive
        raise NotFound("credit account not found")
    entry = await repo.insert_entry(
        session,
        {
            "org_id": debit.org_id,
            "kind": "refund",
            "amount_micros": amount,
            "balance_after_micros": moved.balance_micros,
            "idempotency_key": key,
            "actor": actor,
            "reason": cleaned,
            "api_key_id": debit.api_key_id,
            "hold_id": debit.hold_id,
            "reference": debit.reference,
            "refunds_entry_id": entry_id,
        },
    )
    if entry is None:
        await repo.move_account(
            session, debit.org_id, balance_delta=-amount, available_delta=-amount
        )
        raise Conflict("idempotency key already used for a different operation")
    if debit.api_key_id is not None:
        await repo.move_key_budget(
            session, debit.api_key_id, reserved_delta=0, spent_delta=-amount, budgeted_only=True
        )
    if debit.hold_id is not None:
        held = await repo.get_hold(session, debit.hold_id)
        if held is not None:
            await budget_counters.unspend(session, held.budgets, amount)
    return Posting(entry=entry, replayed=False)


async def list_entries(
    session: Executor,
    org_id: uuid.UUID,
    *,
    cursor: str | None = None,
    limit: int = 50,
    kind: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> EntryPage:
    """Newest first. The cursor is opaque to callers (an entry id), stable under inserts."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidRequest(f"limit must be between 1 and {MAX_PAGE}", param="limit")
    if kind is not None and kind not in ENTRY_KINDS:
        raise InvalidRequest(f"kind must be one of {', '.join(ENTRY_KINDS)}", param="kind")
    before_id = _parse_cursor(cursor)
    rows = await repo.list_entries(
        session, org_id, before_id=before_id, limit=limit + 1, kind=kind, since=since, until=until
    )
    page = rows[:limit]
    more = len(rows) > limit
    return EntryPage(entries=page, next_cursor=str(page[-1].id) if more and page else None)


def _parse_cursor(cursor: str | None) -> int | None:
    if cursor is None or cursor == "":
        return None
    if not (cursor.isascii() and cursor.isdigit()) or len(cursor) > 19 or int(cursor) > INT64_MAX:
        raise InvalidRequest("invalid cursor", param="cursor")
    return int(cursor)
