"""The model catalog as a developer sees it: customer-facing fields and prices in exact
decimal credits, with the multiplier the caller's tier and power level put on them.

Only models a developer can actually call are listed (enabled, with a price in force);
channel groups and fallbacks are routing internals and never appear.
"""

from __future__ import annotations

from fractions import Fraction

from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from domain.pricing import service as catalog
from domain.pricing.cost import BPS, MICROS_PER_CREDIT, POWER_BPS, TIER_BPS, format_credits
from domain.pricing.models import CatalogModel


class PriceOut(BaseModel):
    """Credits as exact decimal strings; `*_micros` fields are the same amounts in micros."""

    unit: str = Field(description="`1M tokens` for chat, else the media unit")
    input: str | None = None
    output: str | None = None
    cached_input: str | None = None
    per_unit: str | None = None
    per_unit_micros: int | None = None
    your_multiplier: str = Field(description="tier x power-level factor applied to your org")
    your_input: str | None = Field(default=None, description="input x your multiplier")
    your_output: str | None = None
    your_cached_input: str | None = None
    your_per_unit: str | None = None


class ModelOut(BaseModel):
    id: str
    type: str
    provider: str | None
    description: str | None
    context_window: int | None
    max_output_tokens: int | None
    price: PriceOut


class ModelList(BaseModel):
    data: list[ModelOut]


def ratio(multiplier: Fraction) -> str:
    """An exact multiplier like "1.2"; bps products are always whole micros."""
    return format_credits(int(multiplier * MICROS_PER_CREDIT))


def exact(value: Fraction) -> str:
    """A Fraction as an exact decimal. Prices times bps factors always terminate (their
    denominators hold only 2s and 5s); anything else would be a bug, so it is refused."""
    sign = "-" if value < 0 else ""
    value = abs(value)
    for places in range(0, 31):
        scaled = value * 10**places
        if scaled.denominator == 1:
            whole, frac = divmod(int(scaled), 10**places)
            digits = f"{frac:0{places}d}".rstrip("0") if places else ""
            return f"{sign}{whole}.{digits}" if digits else f"{sign}{whole}"
    raise ValueError(f"{value} has no short exact decimal form")


def multiplier_of(tier: str, power: str) -> Fraction:
    return Fraction(TIER_BPS.get(tier, BPS) * POWER_BPS.get(power, BPS), BPS * BPS)


def price_of(entry: CatalogModel, multiplier: Fraction) -> PriceOut:
    p = entry.price
    assert p is not None
    if entry.model.type == "chat":
        # Token prices are credits per 1M tokens, so format as whole credits.
        def credits(v: int) -> str:
            return format_credits(v * MICROS_PER_CREDIT)

        return PriceOut(
            unit="1M tokens",
            input=credits(p.input_per_mtok),
            output=credits(p.output_per_mtok),
            cached_input=credits(p.cached_input_per_mtok),
            your_multiplier=ratio(multiplier),
            your_input=exact(p.input_per_mtok * multiplier),
            your_output=exact(p.output_per_mtok * multiplier),
            your_cached_input=exact(p.cached_input_per_mtok * multiplier),
        )
    return PriceOut(
        unit=p.unit or "unit",
        per_unit=format_credits(p.unit_price_micros),
        per_unit_micros=p.unit_price_micros,
        your_multiplier=ratio(multiplier),
        your_per_unit=exact(p.unit_price_micros * multiplier / MICROS_PER_CREDIT),
    )


async def callable_models(session: AsyncSession) -> list[CatalogModel]:
    return [e for e in await catalog.list_models(session, enabled_only=True) if e.price]


def model_out(entry: CatalogModel, multiplier: Fraction) -> ModelOut:
    return ModelOut(
        id=entry.model.name,
        type=entry.model.type,
        provider=entry.model.provider,
        description=entry.model.description,
        context_window=entry.model.context_window,
        max_output_tokens=entry.model.max_output_tokens,
        price=price_of(entry, multiplier),
    )
