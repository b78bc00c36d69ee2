"""Catalog changes made by operators, each with its audit event in the same transaction."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from domain.audit.service import Actor, record
from domain.pricing import service as catalog
from domain.pricing.cost import PriceSnapshot
from domain.pricing.models import ModelInfo, ModelPatch, NewModel, NewPrice


def _info(model: ModelInfo) -> dict[str, object]:
    return model.model_dump(mode="json", exclude={"created_at"})


async def create_model(
    session: AsyncSession, actor: Actor, spec: NewModel, price: NewPrice | None
) -> tuple[ModelInfo, PriceSnapshot | None]:
    model = await catalog.create_model(session, spec)
    snapshot = None
    if price is not None:
        snapshot = await catalog.set_price(
            session, model.name, price.model_copy(update={"created_by": actor.user_id})
        )
    after: dict[str, object] = _info(model)
    if snapshot is not None:
        after["price"] = snapshot.model_dump(mode="json")
    await record(
        session, actor, "model.created", org_id=None,
        target_type="model", target_id=model.name, after=after,
    )  # fmt: skip
    return model, snapshot


async def update_model(
    session: AsyncSession, actor: Actor, name: str, patch: ModelPatch
) -> ModelInfo:
    before = await catalog.get_model(session, name)
    after = await catalog.update_model(session, name, patch)
    await record(
        session, actor, "model.updated", org_id=None, target_type="model",
        target_id=name, before=_info(before), after=_info(after),
    )  # fmt: skip
    return after


async def delete_model(session: AsyncSession, actor: Actor, name: str) -> None:
    before = await catalog.get_model(session, name)
    await catalog.delete_model(session, name)
    await record(
        session, actor, "model.deleted", org_id=None,
        target_type="model", target_id=name, before=_info(before),
    )  # fmt: skip


async def set_price(
    session: AsyncSession, actor: Actor, name: str, price: NewPrice
) -> PriceSnapshot:
    snapshot = await catalog.set_price(
        session, name, price.model_copy(update={"created_by": actor.user_id})
    )
    await record(
        session, actor, "model.price_changed", org_id=None, target_type="model",
        target_id=name, after=snapshot.model_dump(mode="json"),
    )  # fmt: skip
    return snapshot
