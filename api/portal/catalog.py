"""The developer portal's model catalog and copy-paste setup snippets (the models and the
price rules are in `edge.portal.catalog`, shared with the console's Models page)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel

from api.auth import OrgCtx
from domain.setup.snippets import snippets
from edge.deps import ResourcesDep, SessionDep
from edge.portal.catalog import ModelList, callable_models, model_out, multiplier_of

router = APIRouter(prefix="/portal/v1", tags=["portal: models"])


class SetupOut(BaseModel):
    base_url: str
    openai_base_url: str
    models: list[str]
    snippets: dict[str, str]


@router.get("/models")
async def list_models(ctx: OrgCtx, session: SessionDep) -> ModelList:
    multiplier = multiplier_of(ctx.org.tier, ctx.org.power_level)
    return ModelList(data=[model_out(e, multiplier) for e in await callable_models(session)])


@router.get("/setup")
async def setup(
    request: Request, _: OrgCtx, resources: ResourcesDep, session: SessionDep
) -> SetupOut:
    base = (resources.settings.public_base_url or str(request.base_url)).rstrip("/")
    entries = await callable_models(session)
    models = [e.model.name for e in entries]
    chat = [e.model.name for e in entries if e.model.type == "chat"]
    example = chat[0] if chat else (models[0] if models else "your-model")
    return SetupOut(
        base_url=base,
        openai_base_url=f"{base}/v1",
        models=models,
        snippets=snippets(f"{base}/v1", example),
    )
