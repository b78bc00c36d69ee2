"""Exact integer pricing (DESIGN.md §3): no float ever touches money.

Token prices are credits per 1M tokens, which is numerically micro-credits per token, so
tokens x price is already micros. Multipliers are basis points; the product of two of them is
divided out (10^8) together with the token sum and rounded up exactly once, so splitting a
request into parts can never round a customer's bill up twice.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from fractions import Fraction

from pydantic import BaseModel, ConfigDict

from domain.errors import InvalidRequest

MICROS_PER_CREDIT = 1_000_000
BPS = 10_000
POWER_BPS: dict[str, int] = {"eco": 5_000, "balanced": 10_000, "precision": 20_000}
TIER_BPS: dict[str, int] = {
    "free": 10_000,
    "trial": 10_000,
    "starter": 12_000,
    "professional": 10_000,
    "enterprise": 8_000,
}
MAX_MICROS = 2**63 - 1  # BIGINT


def configure_tier_multipliers(multipliers_bps: Mapping[str, int]) -> None:
    """Set the tiers' multipliers from configuration (`OXINF_TIER_MULTIPLIERS_BPS`), once at
    process start, before any call is priced; only known tiers, only positive values."""
    for tier, bps in multipliers_bps.items():
        if tier not in TIER_BPS or bps <= 0:
            raise InvalidRequest(f"cannot set multiplier {bps} for tier {tier!r}")
        TIER_BPS[tier] = bps


class PriceSnapshot(BaseModel):
    """The price a request was charged with, stored as JSON on the request or task.

    Prices change over time; keeping the version used makes every past charge explainable.
    """

    model_config = ConfigDict(frozen=True)

    model: str
    model_type: str
    price_id: str
    input_per_mtok: int = 0
    output_per_mtok: int = 0
    cached_input_per_mtok: int = 0
    unit: str | None = None
    unit_price_micros: int = 0
    effective_from: datetime


def _multipliers(tier: str, power: str) -> int:
    try:
        return POWER_BPS[power] * TIER_BPS[tier]
    except KeyError as exc:
        raise InvalidRequest(f"unknown tier or power level: {exc.args[0]}") from exc


def _ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


def chat_cost_micros(
    snapshot: PriceSnapshot,
    *,
    input_tokens: int,
    output_tokens: int,
    cached_input_tokens: int = 0,
    tier: str,
    power: str,
) -> int:
    """Cost of a chat call in micros, rounded up once.

    `input_tokens` are the uncached ones: OpenAI's `prompt_tokens` includes its
    `cached_tokens`, so pass prompt_tokens - cached_tokens here.
    """
    if min(input_tokens, output_tokens, cached_input_tokens) < 0:
        raise InvalidRequest("token counts must not be negative")
    list_micros = (
        input_tokens * snapshot.input_per_mtok
        + cached_input_tokens * snapshot.cached_input_per_mtok
        + output_tokens * snapshot.output_per_mtok
    )
    return _ceil_div(list_micros * _multipliers(tier, power), BPS * BPS)


def media_cost_micros(
    snapshot: PriceSnapshot, *, units: int | Fraction, tier: str, power: str
) -> int:
    """Cost of `units` (images, video seconds, 1K characters) in micros, rounded up once.

    A Fraction lets a caller price e.g. 1,500 characters as Fraction(1500, 1000) units and
    still round only at the end.
    """
    if units < 0:
        raise InvalidRequest("units must not be negative")
    exact = Fraction(units) * snapshot.unit_price_micros * _multipliers(tier, power)
    return _ceil_div(exact.numerator, exact.denominator * BPS * BPS)


def estimate_chat_hold(
    prompt_tokens: int, max_output_tokens: int, snapshot: PriceSnapshot, tier: str, power: str
) -> int:
    """The most a chat call can cost: every prompt token uncached, every output token used."""
    return chat_cost_micros(
        snapshot,
        input_tokens=prompt_tokens,
        output_tokens=max_output_tokens,
        tier=tier,
        power=power,
    )


def format_credits(micros: int) -> str:
    """Exact decimal credits ("0.194", "25", "-3.5"), for JSON and screens."""
    sign = "-" if micros < 0 else ""
    whole, frac = divmod(abs(micros), MICROS_PER_CREDIT)
    digits = f"{frac:06d}".rstrip("0")
    return f"{sign}{whole}.{digits}" if digits else f"{sign}{whole}"


_CREDITS = re.compile(r"([+-]?)([0-9]{1,19})(?:\.([0-9]+))?")


def parse_credits(text: str) -> int:
    """Decimal credits to micros; more than 6 decimals would be a fraction of a micro."""
    match = _CREDITS.fullmatch(text.strip())
    if match is None:
        raise InvalidRequest(f"not a credit amount: {text!r}")
    sign, whole, frac = match.groups()
    if frac is not None and len(frac) > 6:
        raise InvalidRequest("credit amounts have at most 6 decimals")
    micros = int(whole) * MICROS_PER_CREDIT + int((frac or "").ljust(6, "0"))
    if micros > MAX_MICROS:
        raise InvalidRequest("credit amount too large")
    return -micros if sign == "-" else micros
