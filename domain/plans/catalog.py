"""The plans an org can subscribe to, decided by the server alone (`OXINF_PLANS`).

A checkout names a tier and nothing else; its price, billing interval and currency come
from here, and so does each tier's allocation (`OXINF_TIER_ALLOCATIONS`, credits per
period) and multiplier (`OXINF_TIER_MULTIPLIERS_BPS`). A plan may name the Stripe Price it
sells (`price_id`, needed for plan changes in the customer portal, whose products are set up
in Stripe); without one the checkout describes the price inline.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from domain.errors import InvalidField
from domain.pricing.cost import MICROS_PER_CREDIT, TIER_BPS

Interval = Literal["week", "month"]
# Order of tiers, lowest first: moving down is a downgrade (at the period's end).
TIER_RANK = {"free": 0, "trial": 1, "starter": 2, "professional": 3, "enterprise": 4}
SELF_SERVE = ("trial", "starter", "professional")


class PlanSpec(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str = Field(min_length=1, max_length=120)
    amount_cents: int = Field(gt=0, le=100_000_000)
    interval: Interval = "month"
    currency: str = Field(default="usd", pattern=r"^[a-z]{3}$")
    price_id: str | None = Field(default=None, max_length=200)


DEFAULT_PLANS: dict[str, PlanSpec] = {
    "trial": PlanSpec(name="0xinf Trial", amount_cents=100, interval="week"),
    "starter": PlanSpec(name="0xinf Starter", amount_cents=1_900),
    "professional": PlanSpec(name="0xinf Professional", amount_cents=4_900),
}


@dataclass(frozen=True)
class PlanCatalog:
    plans: Mapping[str, PlanSpec]
    allocations: Mapping[str, int]  # whole credits per period
    multipliers_bps: Mapping[str, int] = field(default_factory=lambda: dict(TIER_BPS))

    def plan(self, tier: str) -> PlanSpec:
        if tier == "enterprise":
            raise InvalidField(
                "the enterprise tier is agreed by contract and assigned by an operator",
                param="tier",
            )
        found = self.plans.get(tier)
        if found is None or tier not in SELF_SERVE:
            raise InvalidField(
                f"tier must be one of {', '.join(t for t in SELF_SERVE if t in self.plans)}",
                param="tier",
            )
        return found

    def allocation_micros(self, tier: str) -> int:
        return self.allocations.get(tier, 0) * MICROS_PER_CREDIT

    def tier_of_price(self, price_id: str | None) -> str | None:
        if not price_id:
            return None
        for tier, spec in self.plans.items():
            if spec.price_id == price_id:
                return tier
        return None


def is_downgrade(old: str, new: str) -> bool:
    return TIER_RANK.get(new, 0) < TIER_RANK.get(old, 0)
