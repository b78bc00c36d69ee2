"""Credit packages: what a customer can buy, decided by the server alone.

The checkout request names a package id and nothing else, so a tampered client can never
choose its own price or credit amount; both come from this list (`OXINF_CREDIT_PACKAGES`).
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field

from domain.errors import InvalidField
from domain.pricing.cost import MICROS_PER_CREDIT


class CreditPackage(BaseModel):
    """A price in the smallest currency unit and the whole credits it buys (bonus included)."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(min_length=1, max_length=120)
    amount_cents: int = Field(gt=0, le=100_000_000)
    credits: int = Field(gt=0, le=10**12)
    currency: str = Field(default="usd", pattern=r"^[a-z]{3}$")

    @property
    def credits_micros(self) -> int:
        return self.credits * MICROS_PER_CREDIT


DEFAULT_PACKAGES: dict[str, CreditPackage] = {
    "starter_10": CreditPackage(name="Starter: 10,000 credits", amount_cents=1_000, credits=10_000),
    "pro_50": CreditPackage(
        name="Pro: 55,000 credits (10% bonus)", amount_cents=5_000, credits=55_000
    ),
}


def resolve_package(packages: Mapping[str, CreditPackage], package_id: str) -> CreditPackage:
    found = packages.get(package_id)
    if found is None:
        known = ", ".join(sorted(packages)) or "none configured"
        raise InvalidField(f"unknown package {package_id!r} (known: {known})", param="package_id")
    return found
