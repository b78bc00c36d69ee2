"""Ledger refusals that the edge maps to 402 (DESIGN.md §9).

They are raised before anything is dispatched or moved, so a caller that catches one may
still commit its transaction: the ledger has already undone its own part.

A refusal says what to do about it: what the operation needed and what was available, in
exact decimal credits in its message and as fields of the error object (`required_credits`,
`available_credits`, and for chat `max_affordable_tokens`, set by the relay).
"""

from __future__ import annotations

from typing import Self

from domain.errors import DomainError
from domain.pricing.cost import format_credits


class CreditRefusal(DomainError):
    """Not enough credit (or budget) for the estimated cost."""

    required_micros: int | None = None
    available_micros: int | None = None

    def with_amounts(
        self,
        required_micros: int,
        available_micros: int,
        *,
        max_affordable_tokens: int | None = None,
        message: str | None = None,
    ) -> Self:
        self.required_micros = required_micros
        self.available_micros = max(0, available_micros)
        self.extra = {
            "required_credits": format_credits(required_micros),
            "available_credits": format_credits(self.available_micros),
            "max_affordable_tokens": max_affordable_tokens,
        }
        self.message = message or (
            f"{self.summary}: this needs up to {format_credits(required_micros)} credits and "
            f"{format_credits(self.available_micros)} {self.room}"
        )
        self.args = (self.message,)
        return self

    summary = "not enough credits"
    room = "are available"


class InsufficientCredits(CreditRefusal):
    code = "insufficient_credits"


class ApiKeyBudgetExhausted(CreditRefusal):
    code = "api_key_budget_exhausted"
    summary = "the credit budget is reached"
    room = "remain in the budget"
