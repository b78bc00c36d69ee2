"""The ledger's rules (DESIGN.md §3), one door for its callers: the account's figures
(`domain.ledger.balances`), entries posted directly (`domain.ledger.entries`: credits,
adjustments, refunds) and two-phase holds (`domain.ledger.holds`: reserve, settle, void,
expire). Every operation runs inside the caller's transaction.

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

from domain.ledger import repository as repo
from domain.ledger.balances import balance, ensure_account
from domain.ledger.checks import SYSTEM_ACTOR
from domain.ledger.entries import adjust, credit, list_entries, refund
from domain.ledger.holds import expire_stale_holds, reserve, restore_lost_hold, settle, void
from domain.ledger.models import Entry

__all__ = [
    "SYSTEM_ACTOR",
    "Entry",
    "adjust",
    "balance",
    "credit",
    "ensure_account",
    "expire_stale_holds",
    "list_entries",
    "refund",
    "repo",
    "reserve",
    "restore_lost_hold",
    "settle",
    "void",
]
