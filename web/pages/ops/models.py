"""`/console/ops/models`: the catalog with every price version; create, reprice, disable.

Each change goes through `domain.pricing.admin`, as `/admin/v1/models` does, so it is
validated and audited the same way; a price change adds a version and never edits one.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from domain.errors import DomainError
from domain.inputs import ModelName
from domain.pricing import admin as catalog_admin
from domain.pricing.models import ModelPatch
from edge.deps import ResourcesDep, SessionDep
from schema.unit_of_work import after_commit
from web.errors import PageRoute
from web.pages.ops.common import (
    actor_of,
    done,
    field_errors,
    form_fields,
    operator,
    operator_form,
    refused,
)
from web.render import render
from web.services.ops import catalog
from web.viewer import Viewer

router = APIRouter(route_class=PageRoute, include_in_schema=False)

ModelsViewer = Annotated[Viewer, operator("ops_models")]
ModelsForm = Annotated[Viewer, operator_form("ops_models")]
HOME = "/console/ops/models"
MODEL_FIELDS = (
    "name", "type", "provider", "description", "channel_group", "fallback_models",
    "max_output_tokens", "context_window",
)  # fmt: skip
PRICE_FIELDS = (
    "input_per_mtok", "output_per_mtok", "cached_input_per_mtok", "unit", "unit_price",
    "effective_from",
)  # fmt: skip


async def _page(
    request: Request,
    viewer: Viewer,
    session: SessionDep,
    *,
    new: dict[str, Any] | None = None,
    price: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    context = {
        "rows": await catalog.models(session),
        "new": new or {"values": {"type": "chat"}, "errors": {}, "open": False},
        "price": price,
    }
    return render(request, "pages/ops/models.html", context, viewer=viewer, status=status)


def _invalidate(session: SessionDep, resources: ResourcesDep) -> None:
    """The relay memoises the catalog; drop it once the change is committed."""
    after_commit(session, lambda: resources.relay.cache.invalidate())


@router.get(HOME)
async def models_page(request: Request, viewer: ModelsViewer, session: SessionDep) -> Response:
    return await _page(request, viewer, session)


@router.post(HOME)
async def create_model(
    request: Request, viewer: ModelsForm, session: SessionDep, resources: ResourcesDep
) -> Response:
    form = await form_fields(request)
    try:
        spec = catalog.new_model(form)
        price = catalog.new_price(form) if form.get("with_price") else None
        model, _ = await catalog_admin.create_model(session, actor_of(request, viewer), spec, price)
    except DomainError as exc:
        refused(exc, session)
        errors = field_errors(exc, MODEL_FIELDS + PRICE_FIELDS, "name")
        new = {"values": form, "errors": errors, "open": True}
        return await _page(request, viewer, session, new=new, status=400)
    _invalidate(session, resources)
    return done(request, HOME, f"Model {model.name} created.")


@router.post(HOME + "/{name:path}/prices")
async def change_price(
    request: Request,
    name: ModelName,
    viewer: ModelsForm,
    session: SessionDep,
    resources: ResourcesDep,
) -> Response:
    form = await form_fields(request)
    try:
        snapshot = await catalog_admin.set_price(
            session, actor_of(request, viewer), name, catalog.new_price(form)
        )
    except DomainError as exc:
        refused(exc, session)
        price = {"model": name, "values": form, "errors": field_errors(exc, PRICE_FIELDS, "unit")}
        return await _page(request, viewer, session, price=price, status=400)
    _invalidate(session, resources)
    when = snapshot.effective_from.strftime("%Y-%m-%d %H:%M UTC")
    return done(request, HOME, f"New price version for {name}, effective {when}.")


@router.post(HOME + "/{name:path}/enabled")
async def set_enabled(
    request: Request,
    name: ModelName,
    viewer: ModelsForm,
    session: SessionDep,
    resources: ResourcesDep,
) -> Response:
    enabled = (await form_fields(request)).get("enabled") == "true"
    await catalog_admin.update_model(
        session, actor_of(request, viewer), name, ModelPatch(enabled=enabled)
    )
    _invalidate(session, resources)
    return done(request, HOME, f"Model {name} {'enabled' if enabled else 'disabled'}.")
