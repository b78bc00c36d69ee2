"""Operator management of the model catalog; price changes add a version, never edit one."""

from __future__ import annotations

from fastapi import APIRouter, Request, status
from pydantic import BaseModel

from api.auth import Operator
from domain.audit.service import Actor
from domain.inputs import ModelName
from domain.pricing import admin as catalog_admin
from domain.pricing import service as catalog
from domain.pricing.cost import PriceSnapshot
from domain.pricing.models import CatalogModel, ModelInfo, ModelPatch, NewModel, NewPrice
from edge.deps import ResourcesDep, SessionDep, client_ip
from schema.identity import User
from schema.unit_of_work import after_commit

router = APIRouter(prefix="/admin/v1/models", tags=["admin: models"])


class ModelIn(NewModel):
    price: NewPrice | None = None


class ModelList(BaseModel):
    data: list[CatalogModel]


def _actor(request: Request, user: User) -> Actor:
    return Actor("operator", user.id, client_ip(request))


@router.get("")
async def list_models(_: Operator, session: SessionDep) -> ModelList:
    return ModelList(data=await catalog.list_models(session, enabled_only=False))


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_model(
    body: ModelIn, request: Request, user: Operator, resources: ResourcesDep, session: SessionDep
) -> CatalogModel:
    spec = NewModel(**body.model_dump(exclude={"price"}))
    model, price = await catalog_admin.create_model(
        session, _actor(request, user), spec, body.price
    )
    after_commit(session, lambda: resources.relay.cache.invalidate())
    return CatalogModel(model=model, price=price)


# Model names may contain "/", so the price route is declared before the catch-all ones.
@router.post("/{name:path}/prices", status_code=status.HTTP_201_CREATED)
async def set_price(
    name: ModelName,
    body: NewPrice,
    request: Request,
    user: Operator,
    resources: ResourcesDep,
    session: SessionDep,
) -> PriceSnapshot:
    snapshot = await catalog_admin.set_price(session, _actor(request, user), name, body)
    after_commit(session, lambda: resources.relay.cache.invalidate())
    return snapshot


@router.get("/{name:path}")
async def get_model(name: ModelName, _: Operator, session: SessionDep) -> ModelInfo:
    return await catalog.get_model(session, name)


@router.patch("/{name:path}")
async def update_model(
    name: ModelName,
    body: ModelPatch,
    request: Request,
    user: Operator,
    resources: ResourcesDep,
    session: SessionDep,
) -> ModelInfo:
    model = await catalog_admin.update_model(session, _actor(request, user), name, body)
    after_commit(session, lambda: resources.relay.cache.invalidate())
    return model


@router.delete("/{name:path}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_model(
    name: ModelName, request: Request, user: Operator, resources: ResourcesDep, session: SessionDep
) -> None:
    await catalog_admin.delete_model(session, _actor(request, user), name)
    after_commit(session, lambda: resources.relay.cache.invalidate())
