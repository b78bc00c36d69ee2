"""Catalog rules: unique names, existing fallbacks, prices that are versioned, never edited.

A price row is never updated: a new version with a later `effective_from` replaces it from
that instant, so a request priced at its start (`price_at`) can always be explained later,
and a price change can be scheduled ahead of time.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from domain.errors import Conflict, InvalidRequest, NotFound
from domain.pricing import repository as repo
from domain.pricing.cost import PriceSnapshot
from domain.pricing.models import CatalogModel, ModelInfo, ModelPatch, NewModel, NewPrice


def _aware(at: datetime, param: str) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise InvalidRequest("timestamps must carry a timezone", param=param)
    return at


async def _check_fallbacks(session: AsyncSession, name: str, fallbacks: list[str]) -> list[str]:
    if name in fallbacks:
        raise InvalidRequest("a model cannot fall back to itself", param="fallback_models")
    if len(set(fallbacks)) != len(fallbacks):
        raise InvalidRequest("fallback models must not repeat", param="fallback_models")
    missing = sorted(set(fallbacks) - await repo.existing_names(session, fallbacks))
    if missing:
        raise InvalidRequest(
            f"unknown fallback models: {', '.join(missing)}", param="fallback_models"
        )
    return fallbacks


async def create_model(session: AsyncSession, spec: NewModel) -> ModelInfo:
    name = spec.name.strip()
    if not name:
        raise InvalidRequest("a model needs a name", param="name")
    values = spec.model_dump()
    values["name"] = name
    values["fallback_models"] = await _check_fallbacks(session, name, spec.fallback_models)
    created = await repo.insert_model(session, values)
    if created is None:
        raise Conflict(f"model {name!r} already exists")
    return created


async def get_model(session: AsyncSession, name: str) -> ModelInfo:
    found = await repo.get_model(session, name)
    if found is None:
        raise NotFound(f"model {name!r} not found")
    return found


async def update_model(session: AsyncSession, name: str, patch: ModelPatch) -> ModelInfo:
    values: dict[str, Any] = {k: getattr(patch, k) for k in patch.model_fields_set}
    for required in ("channel_group", "fallback_models", "enabled"):
        if required in values and values[required] is None:
            raise InvalidRequest(f"{required} cannot be null", param=required)
    if "fallback_models" in values:
        await _check_fallbacks(session, name, values["fallback_models"])
    if not values:
        return await get_model(session, name)
    updated = await repo.update_model(session, name, values)
    if updated is None:
        raise NotFound(f"model {name!r} not found")
    return updated


async def delete_model(session: AsyncSession, name: str) -> None:
    """Refused while another model falls back to it; disabling is the usual way out."""
    dependants = await repo.models_falling_back_to(session, name)
    if dependants:
        raise Conflict(f"model {name!r} is a fallback of: {', '.join(dependants)}")
    if not await repo.delete_model(session, name):
        raise NotFound(f"model {name!r} not found")


TOKEN_PRICED = frozenset({"chat", "embedding"})  # per 1M tokens; media types per unit


async def set_price(session: AsyncSession, model_name: str, price: NewPrice) -> PriceSnapshot:
    """Add a price version effective from `price.effective_from` (default: now)."""
    model = await get_model(session, model_name)
    if model.type not in TOKEN_PRICED and not price.unit:
        raise InvalidRequest("a media price needs a unit", param="unit")
    values = price.model_dump()
    effective = price.effective_from
    values["effective_from"] = None if effective is None else _aware(effective, "at")
    values["model_id"] = model.id
    price_id = await repo.insert_price(session, values)
    if price_id is None:
        raise Conflict("a price version already starts at that instant")
    snapshot = await repo.price_by_id(session, price_id)
    assert snapshot is not None  # inserted by this transaction just above
    return snapshot


async def price_at(session: AsyncSession, model_name: str, at: datetime) -> PriceSnapshot:
    """The version in force at `at`: what a request that started then is charged with."""
    snapshot = await repo.price_at(session, model_name, _aware(at, "at"))
    if snapshot is not None:
        return snapshot
    await get_model(session, model_name)
    raise NotFound(f"model {model_name!r} has no price at {at.isoformat()}")


async def list_models(
    session: AsyncSession, *, enabled_only: bool = True, at: datetime | None = None
) -> list[CatalogModel]:
    return await repo.list_models(
        session, enabled_only=enabled_only, at=None if at is None else _aware(at, "at")
    )
