"""Ledger rules (DESIGN.md §3). Every operation runs inside the caller's transaction.

Each function takes an `AsyncSession` inside an open transaction and never commits, so the
relay can settle a hold and write its request log atomically.

Idempotency, without savepoints: every operation first applies its guarded effect (the
conditional account update, or the `WHERE status = ...` claim of a hold) and then claims
its idempotency key with `INSERT ... ON CONFLICT DO NOTHING`. If the key turns out to be
taken, the effect is reversed by a compensating update *before* returning. That is safe
because the rows it touched stay locked by this transaction, so no other transaction ever
sees the intermediate state; the net effect is zero. When a guarded statement refuses (not
enough credit, budget reached) the key is looked up before raising, so a duplicate that
waited on the original's row lock gets the original result instead of a spurious 402. A
refusal therefore never leaves any write behind, even if the caller catches it and commits.

Why not a SAVEPOINT per operation: it would cost two extra round trips on the hot path and a
subtransaction per request, and PostgreSQL subtransactions degrade badly under load (subxid
cache overflow, SLRU contention). The duplicate path is rare; the happy path stays at 2-4
statements.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime, timedelta

from domain.budgets import counters as budget_counters
from domain.budgets import repository as budget_repo
from domain.budgets.models import BudgetClaim, BudgetRef, period_of
from domain.errors import Conflict, InvalidRequest, NotFound
from domain.inputs import INT64_MAX
from domain.ledger import repository as repo
from domain.ledger.errors import ApiKeyBudgetExhausted, InsufficientCredits
from domain.ledger.models import (
    CREDIT_KINDS,
    REASON_REQUIRED_KINDS,
    Balance,
    Entry,
    EntryPage,
    HoldState,
    Posting,
    Release,
    Reservation,
    Settlement,
    SweepResult,
)
from domain.pricing.cost import format_credits
from schema.db import Executor
from schema.ledger import ENTRY_KINDS

MAX_KEY_LENGTH = 200
MAX_REFERENCE_LENGTH = 120
MAX_PAGE = 200
SYSTEM_ACTOR = "system"
DERIVED_KEY_PREFIX = "hold:"  # settle entries use `hold:{id}:settle`; callers may not


def _require_key(key: str, *, entry: bool) -> None:
    if not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidRequest(
            f"idempotency key must be 1-{MAX_KEY_LENGTH} characters", param="idempotency_key"
        )
    if entry and key.startswith(DERIVED_KEY_PREFIX):
        raise InvalidRequest(
            f"idempotency keys starting with {DERIVED_KEY_PREFIX!r} are reserved",
            param="idempotency_key",
        )


def _require_reference(reference: str | None) -> None:
    if reference is not None and len(reference) > MAX_REFERENCE_LENGTH:
        raise InvalidRequest(
            f"reference must be at most {MAX_REFERENCE_LENGTH} characters", param="reference"
        )


def _require_actor(actor: str) -> None:
    if not actor or not actor.strip() or len(actor) > 120:
        raise InvalidRequest("an actor (1-120 characters) is required", param="actor")


def _clean_reason(reason: str | None, *, required: bool) -> str | None:
    cleaned = reason.strip() if reason else None
    if required and not cleaned:
        raise InvalidRequest("a reason is required for this change", param="reason")
    return cleaned or None


async def _account_missing(session: Executor, org_id: uuid.UUID) -> bool:
    return await repo.get_account(session, org_id) is None


# --- accounts ------------------------------------------------------------------------------


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


# --- credits and adjustments ---------------------------------------------------------------


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
    _require_key(key, entry=True)
    _require_actor(actor)
    _require_reference(reference)
    reason = _clean_reason(reason, required=kind in REASON_REQUIRED_KINDS)
    moved = await repo.move_account(
        session, org_id, balance_delta=amount, available_delta=amount, guard_available=amount < 0
    )
    if moved is None:
        replay = await _replayed_entry(session, key, org_id, kind, amount)
        if replay is not None:
            return replay
        if await _account_missing(session, org_id):
            raise NotFound("credit account not found")
        if amount > 0:  # the account's state refuses it, not the amount's form: 409
            raise Conflict(
                f"this would take the balance past {format_credits(INT64_MAX)} credits, the most"
                " an account can hold; nothing was credited",
                param="amount_micros",
            )
        raise InsufficientCredits("an adjustment may not take more than the available credit")
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


# --- holds ---------------------------------------------------------------------------------


async def reserve(
    session: Executor,
    org_id: uuid.UUID,
    amount_micros: int,
    *,
    key: str,
    expires_in: timedelta,
    api_key_id: uuid.UUID | None = None,
    reference: str | None = None,
    budgets: Sequence[BudgetRef] = (),
    period: date | None = None,
) -> Reservation:
    """Set aside the estimated maximum before dispatch (the precheck that can say 402).

    `budgets` are the enterprise budget policies reaching the caller: hard ones reserve the
    same amount in this month's counter (refusing with `api_key_budget_exhausted`), soft ones
    are remembered on the hold so its settle counts the spend.
    """
    _require_key(key, entry=False)
    _require_reference(reference)
    if amount_micros < 0:
        raise InvalidRequest("a hold must not be negative", param="amount_micros")
    if expires_in <= timedelta(0):
        raise InvalidRequest("a hold must expire in the future", param="expires_in")
    taken = await repo.move_account(
        session, org_id, balance_delta=0, available_delta=-amount_micros, guard_available=True
    )
    if taken is None:
        replay = await _replayed_hold(session, key, org_id, amount_micros, api_key_id)
        if replay is not None:
            return replay
        if await _account_missing(session, org_id):
            raise NotFound("credit account not found")
        raise InsufficientCredits("not enough credits for the estimated cost")

    key_part = 0
    if api_key_id is not None:
        budget = await repo.reserve_key_budget(session, api_key_id, org_id, amount_micros)
        if budget is None or (budget.has_budget and not budget.reserved):
            await repo.move_account(session, org_id, balance_delta=0, available_delta=amount_micros)
            replay = await _replayed_hold(session, key, org_id, amount_micros, api_key_id)
            if replay is not None:
                return replay
            if budget is None:
                raise NotFound("api key not found")
            raise ApiKeyBudgetExhausted("the api key's credit budget is exhausted")
        key_part = amount_micros if budget.has_budget else 0

    claims: list[BudgetClaim] = []
    if budgets:
        taken_claims = await budget_counters.reserve(
            session, budgets, amount_micros, period or period_of()
        )
        if taken_claims is None:
            await _undo_reserve(session, org_id, api_key_id, amount_micros, key_part, [])
            replay = await _replayed_hold(session, key, org_id, amount_micros, api_key_id)
            if replay is not None:
                return replay
            raise ApiKeyBudgetExhausted("a budget policy's monthly credit limit is reached")
        claims = taken_claims

    hold = await repo.insert_hold(
        session,
        org_id=org_id,
        api_key_id=api_key_id,
        amount=amount_micros,
        key_budget=key_part,
        key=key,
        reference=reference,
        expires_in=expires_in,
        budgets=claims,
    )
    if hold is not None:
        return Reservation(hold=hold, replayed=False)
    await _undo_reserve(session, org_id, api_key_id, amount_micros, key_part, claims)
    replay = await _replayed_hold(session, key, org_id, amount_micros, api_key_id)
    if replay is None:  # the competing insert rolled back after ours saw it; let caller retry
        raise Conflict("idempotency key is being used concurrently; retry")
    return replay


async def _undo_reserve(
    session: Executor,
    org_id: uuid.UUID,
    api_key_id: uuid.UUID | None,
    amount: int,
    key_part: int,
    claims: Sequence[BudgetClaim],
) -> None:
    """Compensate a reserve that will not stand (the rows are still ours, see the top)."""
    await repo.move_account(session, org_id, balance_delta=0, available_delta=amount)
    if key_part and api_key_id is not None:
        await repo.move_key_budget(
            session, api_key_id, reserved_delta=-key_part, spent_delta=0, budgeted_only=False
        )
    await budget_counters.release(session, claims)


async def _replayed_hold(
    session: Executor,
    key: str,
    org_id: uuid.UUID,
    amount: int,
    api_key_id: uuid.UUID | None,
) -> Reservation | None:
    found = await repo.hold_by_key(session, key)
    if found is None:
        return None
    if (found.org_id, found.amount_micros, found.api_key_id) != (org_id, amount, api_key_id):
        raise Conflict("idempotency key already used for a different hold")
    return Reservation(hold=found, replayed=True)


def _settlement(hold: HoldState, *, entry_id: int | None, replayed: bool) -> Settlement:
    charged = hold.settled_micros or 0
    return Settlement(
        hold_id=hold.id,
        charged_micros=charged,
        uncollected_micros=hold.uncollected_micros,
        released_micros=hold.amount_micros - min(charged, hold.amount_micros),
        entry_id=entry_id,
        replayed=replayed,
    )


async def restore_lost_hold(
    session: Executor,
    hold_id: uuid.UUID,
    *,
    org_id: uuid.UUID,
    amount: int,
    key: str,
    reference: str | None,
) -> bool:
    """Bring back, as expired, a hold a database crash rolled back after the call began.

    The relay's usual reserve commits without waiting for the WAL flush
    (`domain.relay.repository`), so a crash can lose it while its upstream call goes on.
    Recorded as expired, it reserves nothing (available credit is what the crash left),
    and `settle` then bills the call from available credit as it bills any hold that
    outlived itself. False, and nothing written, when a hold with this id or key exists.
    """
    return await repo.insert_lost_hold(
        session, hold_id, org_id=org_id, amount=amount, key=key, reference=reference
    )


async def settle(
    session: Executor,
    hold_id: uuid.UUID,
    actual_micros: int,
    *,
    actor: str = SYSTEM_ACTOR,
) -> Settlement:
    """Charge the actual cost once and release the rest of the hold.

    An actual cost above the hold takes what available credit covers and records the rest as
    uncollected. A hold the sweeper already expired (a request that outlived its hold) is
    still billed the same way, from available credit, since its hold was released.
    """
    if actual_micros < 0:
        raise InvalidRequest("actual cost must not be negative", param="actual_micros")
    _require_actor(actor)
    hold = await repo.claim_hold(
        session, hold_id, from_status="pending", to_status="settled", settle_up_to=actual_micros
    )
    reserved = hold.amount_micros if hold is not None else 0
    if hold is None:
        current = await repo.get_hold(session, hold_id, lock=True)
        if current is None:
            raise NotFound("hold not found")
        if current.status == "settled":
            debit = await repo.entry_by_key(session, _settle_key(hold_id))
            return _settlement(current, entry_id=debit.id if debit else None, replayed=True)
        if current.status == "voided":
            raise Conflict("hold was voided")
        hold = await repo.claim_hold(
            session, hold_id, from_status="expired", to_status="settled", settle_up_to=0
        )
        if hold is None:  # pragma: no cover - we hold the row lock, so the status is stable
            raise Conflict("hold changed concurrently; retry")

    covered = min(actual_micros, reserved)
    released = reserved - covered
    overflow = actual_micros - covered
    extra = 0
    if overflow:
        account = await repo.get_account(session, hold.org_id, lock=True)
        extra = min(overflow, account.available_micros) if account else 0
    moved = await repo.move_account(
        session,
        hold.org_id,
        balance_delta=-(covered + extra),
        available_delta=released - extra,
    )
    if moved is None:  # pragma: no cover - the hold's FK keeps the account alive
        raise NotFound("credit account not found")
    charged = covered + extra
    if overflow or hold.settled_micros != charged:
        await repo.record_settlement(
            session, hold_id, settled=charged, uncollected=overflow - extra
        )
    hold = hold.model_copy(
        update={"settled_micros": charged, "uncollected_micros": overflow - extra}
    )

    entry_id = None
    if charged:
        entry = await repo.insert_entry(
            session,
            {
                "org_id": hold.org_id,
                "kind": "debit",
                "amount_micros": -charged,
                "balance_after_micros": moved.balance_micros,
                "idempotency_key": _settle_key(hold_id),
                "actor": actor,
                "api_key_id": hold.api_key_id,
                "hold_id": hold_id,
                "reference": hold.reference,
            },
        )
        if entry is None:  # callers cannot use the `hold:` prefix, so this is corruption
            raise RuntimeError(f"ledger key {_settle_key(hold_id)} already taken; roll back")
        entry_id = entry.id
    key_part = hold.key_budget_micros if reserved else 0
    # A hold that reserved nothing on its key although it held an amount was made under a key
    # without a budget: skip the round trip. Zero holds and late settles cannot tell, so they
    # ask the database (which only touches keys that have a budget).
    unbudgeted = reserved > 0 and key_part == 0
    if hold.api_key_id is not None and (key_part or charged) and not unbudgeted:
        await repo.move_key_budget(
            session,
            hold.api_key_id,
            reserved_delta=-key_part,
            spent_delta=charged,
            budgeted_only=key_part == 0,
        )
    # An expired hold (reserved == 0) had its reservations released by the sweeper.
    await budget_counters.spend(session, hold.budgets, charged, release=reserved > 0)
    return _settlement(hold, entry_id=entry_id, replayed=False)


def _settle_key(hold_id: uuid.UUID) -> str:
    return f"hold:{hold_id}:settle"


async def void(session: Executor, hold_id: uuid.UUID) -> Release:
    """Release a hold unused (dispatch failed). Voiding an expired hold is a no-op success."""
    hold = await repo.claim_hold(session, hold_id, from_status="pending", to_status="voided")
    if hold is None:
        current = await repo.get_hold(session, hold_id)
        if current is None:
            raise NotFound("hold not found")
        if current.status == "settled":
            raise Conflict("hold was already settled")
        return Release(
            hold_id=hold_id,
            status=current.status,
            released_micros=current.amount_micros,
            replayed=True,
        )
    await repo.move_account(
        session, hold.org_id, balance_delta=0, available_delta=hold.amount_micros
    )
    if hold.api_key_id is not None and hold.key_budget_micros:
        await repo.move_key_budget(
            session,
            hold.api_key_id,
            reserved_delta=-hold.key_budget_micros,
            spent_delta=0,
            budgeted_only=False,
        )
    await budget_counters.release(session, hold.budgets)
    return Release(
        hold_id=hold_id, status="voided", released_micros=hold.amount_micros, replayed=False
    )


async def expire_stale_holds(
    session: Executor, *, now: datetime | None = None, limit: int = 500
) -> SweepResult:
    """Expire one batch of overdue holds; `now=None` uses the database clock.

    Rows another sweeper (or a settling request) has locked are skipped, so any number of
    workers can sweep at once and a request finishing right now is never raced.
    """
    if limit <= 0:
        raise InvalidRequest("limit must be positive", param="limit")
    expired = await repo.expire_holds(session, now=now, limit=limit)
    per_org: dict[uuid.UUID, int] = {}
    per_key: dict[uuid.UUID, int] = {}
    per_budget: dict[tuple[uuid.UUID, date], int] = {}
    for hold in expired:
        per_org[hold.org_id] = per_org.get(hold.org_id, 0) + hold.amount_micros
        if hold.api_key_id is not None and hold.key_budget_micros:
            per_key[hold.api_key_id] = per_key.get(hold.api_key_id, 0) + hold.key_budget_micros
        for claim in hold.budgets:
            slot = (claim.policy_id, claim.period)
            per_budget[slot] = per_budget.get(slot, 0) + claim.micros
    await repo.release_to_accounts(session, per_org)
    await repo.release_key_budgets(session, per_key)
    await budget_repo.release_totals(session, per_budget)
    return SweepResult(expired=len(expired), released_micros=sum(per_org.values()))


# --- refunds -------------------------------------------------------------------------------


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
    _require_key(key, entry=True)
    _require_actor(actor)
    cleaned = _clean_reason(reason, required=True)
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


# --- queries -------------------------------------------------------------------------------


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


__all__ = [
    "Entry",
    "adjust",
    "balance",
    "credit",
    "ensure_account",
    "expire_stale_holds",
    "list_entries",
    "refund",
    "reserve",
    "settle",
    "void",
]
