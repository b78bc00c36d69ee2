"""Usage totals as the portal reads them: exact integers per group."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

GroupBy = Literal["none", "day", "month", "model", "key"]


@dataclass
class UsageRow:
    """One group's exact integer totals."""

    key: str | None
    requests: int = 0
    failed_requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_micros: int = 0
    byok_requests: int = 0

    def add(self, other: UsageRow) -> None:
        self.requests += other.requests
        self.failed_requests += other.failed_requests
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.cost_micros += other.cost_micros
        self.byok_requests += other.byok_requests


@dataclass
class UsageSummary:
    start: datetime
    end: datetime
    group_by: GroupBy
    rollup_months: list[datetime]
    total: UsageRow
    groups: list[UsageRow] = field(default_factory=list)
