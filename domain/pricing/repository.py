"""Every SQL statement of the model catalog and its price versions."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import RowMapping, delete, func, literal, select, true, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from domain.pricing.cost import PriceSnapshot
from domain.pricing.models import CatalogModel, ModelInfo
from schema.base import table_of
from schema.pricing import Model, ModelPrice

models = table_of(Model)
prices = table_of(ModelPrice)

_MODEL_COLUMNS = [models.c[name] for name in ModelInfo.model_fields]
_PRICE_COLUMNS = [
    models.c.name.label("model"),
    models.c.type.label("model_type"),
    prices.c.id.label("price_id"),
    prices.c.input_per_mtok,
    prices.c.output_per_mtok,
    prices.c.cached_input_per_mtok,
    prices.c.unit,
    prices.c.unit_price_micros,
    prices.c.effective_from,
]


def _model(row: RowMapping | None) -> ModelInfo | None:
    return None if row is None else ModelInfo.model_validate(dict(row))


def _snapshot(row: RowMapping | None) -> PriceSnapshot | None:
    if row is None:
        return None
    return PriceSnapshot.model_validate({**row, "price_id": str(row["price_id"])})


async def insert_model(session: AsyncSession, values: Mapping[str, Any]) -> ModelInfo | None:
    """None when the name is taken."""
    stmt = (
        insert(models)
        .values(id=uuid.uuid4(), **values)
        .on_conflict_do_nothing(index_elements=[models.c.name])
        .returning(*_MODEL_COLUMNS)
    )
    return _model((await session.execute(stmt)).mappings().first())


async def get_model(session: AsyncSession, name: str) -> ModelInfo | None:
    stmt = select(*_MODEL_COLUMNS).where(models.c.name == name)
    return _model((await session.execute(stmt)).mappings().first())


async def existing_names(session: AsyncSession, names: Iterable[str]) -> set[str]:
    wanted = list(names)
    if not wanted:
        return set()
    rows = await session.execute(select(models.c.name).where(models.c.name.in_(wanted)))
    return {str(name) for name in rows.scalars()}


async def update_model(
    session: AsyncSession, name: str, values: Mapping[str, Any]
) -> ModelInfo | None:
    stmt = update(models).where(models.c.name == name).values(**values).returning(*_MODEL_COLUMNS)
    return _model((await session.execute(stmt)).mappings().first())


async def delete_model(session: AsyncSession, name: str) -> bool:
    stmt = delete(models).where(models.c.name == name).returning(models.c.id)
    return (await session.execute(stmt)).first() is not None


async def models_falling_back_to(session: AsyncSession, name: str) -> list[str]:
    contains = models.c.fallback_models.op("@>")(func.jsonb_build_array(name))
    rows = await session.execute(select(models.c.name).where(contains).order_by(models.c.name))
    return [str(n) for n in rows.scalars()]


async def insert_price(session: AsyncSession, values: Mapping[str, Any]) -> uuid.UUID | None:
    """None when this model already has a version starting at that exact instant. An
    `effective_from` of None starts the version at the database's now."""
    if values.get("effective_from") is None:
        values = {**values, "effective_from": func.now()}
    stmt = (
        insert(prices)
        .values(id=uuid.uuid4(), **values)
        .on_conflict_do_nothing(index_elements=[prices.c.model_id, prices.c.effective_from])
        .returning(prices.c.id)
    )
    found = (await session.execute(stmt)).scalar_one_or_none()
    return None if found is None else uuid.UUID(str(found))


async def price_by_id(session: AsyncSession, price_id: uuid.UUID) -> PriceSnapshot | None:
    stmt = (
        select(*_PRICE_COLUMNS)
        .select_from(prices.join(models, models.c.id == prices.c.model_id))
        .where(prices.c.id == price_id)
    )
    return _snapshot((await session.execute(stmt)).mappings().first())


async def price_at(session: AsyncSession, model_name: str, at: datetime) -> PriceSnapshot | None:
    stmt = (
        select(*_PRICE_COLUMNS)
        .select_from(prices.join(models, models.c.id == prices.c.model_id))
        .where(models.c.name == model_name, prices.c.effective_from <= at)
        .order_by(prices.c.effective_from.desc())
        .limit(1)
    )
    return _snapshot((await session.execute(stmt)).mappings().first())


async def list_models(
    session: AsyncSession, *, enabled_only: bool, at: datetime | None
) -> list[CatalogModel]:
    """Every model with the price version in force at `at` (None: the database's now)."""
    cutoff = func.now() if at is None else literal(at)
    current = (
        select(*_PRICE_COLUMNS[2:])
        .where(prices.c.model_id == models.c.id, prices.c.effective_from <= cutoff)
        .order_by(prices.c.effective_from.desc())
        .limit(1)
        .lateral("current")
    )
    stmt = (
        select(*_MODEL_COLUMNS, *current.c)
        .select_from(models.outerjoin(current, true()))
        .order_by(models.c.name)
    )
    if enabled_only:
        stmt = stmt.where(models.c.enabled.is_(True))
    result: list[CatalogModel] = []
    for row in (await session.execute(stmt)).mappings().all():
        info = ModelInfo.model_validate({k: row[k] for k in ModelInfo.model_fields})
        price = None
        if row["price_id"] is not None:
            price = PriceSnapshot.model_validate(
                {
                    **{k: row[k] for k in PriceSnapshot.model_fields if k in row},
                    "model": info.name,
                    "model_type": info.type,
                    "price_id": str(row["price_id"]),
                }
            )
        result.append(CatalogModel(model=info, price=price))
    return result


async def price_versions(session: AsyncSession) -> list[PriceSnapshot]:
    """Every price version of every model, by model then newest first."""
    stmt = (
        select(*_PRICE_COLUMNS)
        .select_from(prices.join(models, models.c.id == prices.c.model_id))
        .order_by(models.c.name, prices.c.effective_from.desc())
    )
    return [p for row in (await session.execute(stmt)).mappings() if (p := _snapshot(row))]
