"""The developer portal's model catalog and copy-paste setup snippets.

Only models a developer can actually call are listed (enabled, with a price in force), and
only customer-facing fields: channel groups and fallbacks are routing internals.
"""

from __future__ import annotations

from fractions import Fraction

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from api.auth import OrgCtx
from domain.pricing import service as catalog
from domain.pricing.cost import BPS, MICROS_PER_CREDIT, POWER_BPS, TIER_BPS, format_credits
from domain.pricing.models import CatalogModel
from domain.setup.snippets import snippets
from edge.deps import ResourcesDep, SessionDep

router = APIRouter(prefix="/portal/v1", tags=["portal: models"])


class PriceOut(BaseModel):
    """Credits as exact decimal strings; `*_micros` fields are the same amounts in micros."""

    unit: str = Field(description="`1M tokens` for chat, else the media unit")
    input: str | None = None
    output: str | None = None
    cached_input: str | None = None
    per_unit: str | None = None
    per_unit_micros: int | None = None
    your_multiplier: str = Field(description="tier x power-level factor applied to your org")


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


class SetupOut(BaseModel):
    base_url: str
    openai_base_url: str
    models: list[str]
    snippets: dict[str, str]


def _ratio(multiplier: Fraction) -> str:
    """An exact multiplier like "1.2"; bps products are always whole micros."""
    return format_credits(int(multiplier * MICROS_PER_CREDIT))


def _price(entry: CatalogModel, multiplier: Fraction) -> PriceOut:
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
            your_multiplier=_ratio(multiplier),
        )
    return PriceOut(
        unit=p.unit or "unit",
        per_unit=format_credits(p.unit_price_micros),
        per_unit_micros=p.unit_price_micros,
        your_multiplier=_ratio(multiplier),
    )


def _multiplier(tier: str, power: str) -> Fraction:
    return Fraction(TIER_BPS.get(tier, BPS) * POWER_BPS.get(power, BPS), BPS * BPS)


async def _callable_models(session: SessionDep) -> list[CatalogModel]:
    return [e for e in await catalog.list_models(session, enabled_only=True) if e.price]


@router.get("/models")
async def list_models(ctx: OrgCtx, session: SessionDep) -> ModelList:
    multiplier = _multiplier(ctx.org.tier, ctx.org.power_level)
    return ModelList(
        data=[
            ModelOut(
                id=e.model.name,
                type=e.model.type,
                provider=e.model.provider,
                description=e.model.description,
                context_window=e.model.context_window,
                max_output_tokens=e.model.max_output_tokens,
                price=_price(e, multiplier),
            )
            for e in await _callable_models(session)
        ]
    )


@router.get("/setup")
async def setup(
    request: Request, _: OrgCtx, resources: ResourcesDep, session: SessionDep
) -> SetupOut:
    base = (resources.settings.public_base_url or str(request.base_url)).rstrip("/")
    entries = await _callable_models(session)
    models = [e.model.name for e in entries]
    chat = [e.model.name for e in entries if e.model.type == "chat"]
    example = chat[0] if chat else (models[0] if models else "your-model")
    return SetupOut(
        base_url=base,
        openai_base_url=f"{base}/v1",
        models=models,
        snippets=snippets(f"{base}/v1", example),
    )
