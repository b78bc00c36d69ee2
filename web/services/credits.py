"""The credit dashboard (seed 004 §7.4) from the ledger, the request logs and billing settings.

Everyone in the org sees the balance, the period's usage and the history; buying and
auto-recharge are shown to the roles the payments service lets act (finance and up), so a
page never offers a button that would answer 403.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from domain.billing_cycles.periods import month_start, next_month_start
from domain.identity.service import OrgContext
from domain.ledger import service as ledger
from domain.ledger.models import Balance, EntryPage
from domain.payments import service as payments
from domain.payments.models import BillingSettings, PaymentRecord
from domain.payments.packages import CreditPackage
from domain.pricing.cost import MICROS_PER_CREDIT
from domain.usage import service as usage
from web.services.charts import DayPoint, daily_chart

CHART_DAYS = 30
ENTRIES_PER_PAGE = 20
KIND_LABELS = {
    "purchase": "Credit purchase",
    "allocation": "Monthly allocation",
    "bonus": "Bonus credits",
    "adjustment": "Adjustment",
    "debit": "API usage",
    "refund": "Refund",
    "reversal": "Payment reversed",
}


@dataclass(frozen=True)
class Billing:
    """What a finance-or-higher viewer may do: buy packages and set auto-recharge."""

    stripe_ready: bool
    packages: list[tuple[str, CreditPackage]]
    settings: BillingSettings
    payments: list[PaymentRecord]


@dataclass(frozen=True)
class CreditsView:
    balance: Balance
    tier: str
    allocation_micros: int
    period_used_micros: int
    period_start: datetime
    next_reset: datetime
    chart: dict[str, object]
    entries: EntryPage
    billing: Billing | None

    @property
    def used_percent(self) -> int:
        """For the meter only; the figures beside it are exact."""
        if self.allocation_micros <= 0:
            return 0
        return min(100, self.period_used_micros * 100 // self.allocation_micros)

    @property
    def days_to_reset(self) -> int:
        return max(0, (self.next_reset - datetime.now(UTC)).days)


async def usage_chart(session: AsyncSession, org_id: uuid.UUID, today: date) -> dict[str, object]:
    first = today - timedelta(days=CHART_DAYS - 1)
    start = datetime(first.year, first.month, first.day, tzinfo=UTC)
    rows = await usage.cost_by_day_and_model(
        session, org_id, start=start, end=start + timedelta(days=CHART_DAYS)
    )
    points = [DayPoint(day, model, micros, n) for day, model, micros, n in rows]
    return daily_chart(points, first, today, title="Credits per day, last 30 days")


async def billing_of(
    session: AsyncSession,
    ctx: OrgContext,
    packages: Mapping[str, CreditPackage],
    *,
    stripe_ready: bool,
) -> Billing | None:
    if not ctx.at_least(payments.BILLING_ROLE):
        return None
    return Billing(
        stripe_ready=stripe_ready,
        packages=sorted(packages.items(), key=lambda kv: (kv[1].amount_cents, kv[0])),
        settings=await payments.billing_settings(session, ctx),
        payments=await payments.list_payments(session, ctx, limit=5),
    )


async def credits_view(
    session: AsyncSession,
    ctx: OrgContext,
    *,
    allocations: Mapping[str, int],
    packages: Mapping[str, CreditPackage],
    stripe_ready: bool,
    cursor: str | None = None,
) -> CreditsView:
    now = datetime.now(UTC)
    period_start = month_start(now)
    summary = await usage.usage_summary(
        session, ctx.org.id, start=period_start, end=now, group_by="none", now=now
    )
    return CreditsView(
        balance=await ledger.balance(session, ctx.org.id),
        tier=ctx.org.tier,
        allocation_micros=allocations.get(ctx.org.tier, 0) * MICROS_PER_CREDIT,
        period_used_micros=summary.total.cost_micros,
        period_start=period_start,
        next_reset=next_month_start(now),
        chart=await usage_chart(session, ctx.org.id, now.date()),
        entries=await ledger.list_entries(
            session, ctx.org.id, cursor=cursor, limit=ENTRIES_PER_PAGE
        ),
        billing=await billing_of(session, ctx, packages, stripe_ready=stripe_ready),
    )
