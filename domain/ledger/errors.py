"""Ledger refusals that the edge maps to 402 (DESIGN.md §9).

They are raised before anything is dispatched or moved, so a caller that catches one may
still commit its transaction: the ledger has already undone its own part.
"""

from __future__ import annotations

from domain.errors import DomainError


class InsufficientCredits(DomainError):
    code = "insufficient_credits"


class ApiKeyBudgetExhausted(DomainError):
    code = "api_key_budget_exhausted"
