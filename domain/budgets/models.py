"""Budget facts shared with the ledger: which policies a hold counts against, and how."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime

from pydantic import BaseModel, ConfigDict


@dataclass(frozen=True, order=True)
class BudgetRef:
    """A policy that applies to a request. Hard ones reserve; soft ones only count spend."""

    policy_id: uuid.UUID
    hard: bool


class BudgetClaim(BaseModel):
    """One policy a hold counts against, stored on the hold (`holds.budget_reservations`)
    so settle, void and the sweeper release exactly what reserve took, in the month it
    took it, whatever happened to the policy since."""

    model_config = ConfigDict(frozen=True)

    policy_id: uuid.UUID
    period: date
    micros: int  # reserved by this hold: the hold's amount for hard policies, 0 for soft


def period_of(moment: datetime | None = None) -> date:
    """Budgets run by calendar month in UTC, the clock the ledger stores."""
    now = (moment or datetime.now(UTC)).astimezone(UTC)
    return date(now.year, now.month, 1)
