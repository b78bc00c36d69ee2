"""Two-phase holds (DESIGN.md §3): reserve the most a call can cost, then settle what it
did cost or void it, exactly once; the sweeper expires what nobody resolved.

Reserve takes the account, then the key's budget, then the budget policies' counters, and
undoes what it took if a later step refuses or its idempotency key turns out to be taken
(`domain.ledger.service`). Settle and void claim the hold with `WHERE status = ...`, so
only one of them, once, moves money.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime, timedelta

from domain.budgets import counters as budget_counters
from domain.budgets import repository as budget_repo
from domain.budgets.models import BudgetClaim, BudgetRef, period_of
from domain.errors import Conflict, InvalidRequest, NotFound
from domain.ledger import repository as repo
from domain.ledger.checks import SYSTEM_ACTOR, require_actor, require_key, require_reference
from domain.ledger.errors import ApiKeyBudgetExhausted, InsufficientCredits
from domain.ledger.models import HoldState, Release, Reservation, Settlement, SweepResult
from schema.db import Executor


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
    require_key(key, entry=False)
    require_reference(reference)
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
        room = await _room(session, org_id, api_key_id, budgets, period)
        raise InsufficientCredits("").with_amounts(amount_micros, room)

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
            room = await _room(session, org_id, api_key_id, budgets, period)
            raise ApiKeyBudgetExhausted("").with_amounts(amount_micros, room)
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
            room = await _room(session, org_id, api_key_id, budgets, period)
            raise ApiKeyBudgetExhausted("").with_amounts(amount_micros, room)
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


async def _room(
    session: Executor,
    org_id: uuid.UUID,
    api_key_id: uuid.UUID | None,
    budgets: Sequence[BudgetRef],
    period: date | None,
) -> int:
    """What the refused reserve could have taken (read after its own part was undone)."""
    found = await repo.spendable(
        session, org_id, api_key_id=api_key_id,
        hard_policies=[b.policy_id for b in budgets if b.hard], period=period or period_of(),
    )  # fmt: skip
    if found is None:
        raise NotFound("credit account not found")
    return found.micros


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
    require_actor(actor)
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
