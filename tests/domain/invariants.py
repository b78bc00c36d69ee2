"""The money invariants of DESIGN.md §3, checked straight from the tables."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import text

from schema.db import SessionFactory


@dataclass(frozen=True)
class Books:
    balance: int
    available: int
    entries_sum: int
    pending_sum: int
    pending_count: int


async def assert_books_balance(sessions: SessionFactory, org_id: uuid.UUID) -> Books:
    """available ≥ 0, balance = Σ entries, available = balance - Σ pending holds, and every
    hold, debit and refund was applied at most once."""
    async with sessions() as s:
        row = (
            await s.execute(
                text(
                    """
                    SELECT a.balance_micros, a.available_micros,
                      (SELECT coalesce(sum(amount_micros), 0) FROM ledger_entries
                        WHERE org_id = :org),
                      (SELECT coalesce(sum(amount_micros), 0) FROM holds
                        WHERE org_id = :org AND status = 'pending'),
                      (SELECT count(*) FROM holds WHERE org_id = :org AND status = 'pending')
                    FROM credit_accounts a WHERE a.org_id = :org
                    """
                ),
                {"org": org_id},
            )
        ).one()
        books = Books(*(int(v) for v in row))
        twice = (
            await s.execute(
                text(
                    """
                    SELECT
                      (SELECT count(*) FROM (SELECT hold_id FROM ledger_entries
                         WHERE org_id = :org AND kind = 'debit'
                         GROUP BY hold_id HAVING count(*) > 1) d),
                      (SELECT count(*) FROM (SELECT refunds_entry_id FROM ledger_entries
                         WHERE org_id = :org AND kind = 'refund'
                         GROUP BY refunds_entry_id HAVING count(*) > 1) r),
                      (SELECT count(*) FROM ledger_entries r JOIN ledger_entries d
                         ON d.id = r.refunds_entry_id
                         WHERE r.org_id = :org AND r.amount_micros <> -d.amount_micros),
                      (SELECT count(*) FROM holds h JOIN ledger_entries e ON e.hold_id = h.id
                         AND e.kind = 'debit'
                         WHERE h.org_id = :org AND -e.amount_micros <> h.settled_micros)
                    """
                ),
                {"org": org_id},
            )
        ).one()
    assert books.available >= 0, books
    assert books.balance == books.entries_sum, books
    assert books.available == books.balance - books.pending_sum, books
    assert tuple(twice) == (0, 0, 0, 0), twice
    return books


async def assert_key_books(sessions: SessionFactory, key_id: uuid.UUID) -> tuple[int, int]:
    """For a key budgeted from birth: reserved = Σ its pending holds' key parts and
    spent = what its debits charged minus what was refunded."""
    async with sessions() as s:
        row = (
            await s.execute(
                text(
                    """
                    SELECT k.budget_spent_micros, k.budget_reserved_micros,
                      (SELECT coalesce(-sum(amount_micros), 0) FROM ledger_entries
                        WHERE api_key_id = :k AND kind IN ('debit', 'refund')),
                      (SELECT coalesce(sum(key_budget_micros), 0) FROM holds
                        WHERE api_key_id = :k AND status = 'pending')
                    FROM api_keys k WHERE k.id = :k
                    """
                ),
                {"k": key_id},
            )
        ).one()
    spent, reserved, charged, pending = (int(v) for v in row)
    assert reserved == pending, (reserved, pending)
    assert spent == charged, (spent, charged)
    return spent, reserved
