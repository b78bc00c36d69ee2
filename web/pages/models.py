"""`/console/models`: the models this org can call, their prices, and what its tier and
power level make of them (the same catalog and figures as `GET /portal/v1/models`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from edge.deps import SessionDep
from edge.portal.catalog import callable_models, model_out, multiplier_of, ratio
from web.errors import PageRoute
from web.render import render
from web.viewer import Viewer, page_viewer

router = APIRouter(route_class=PageRoute, include_in_schema=False)


@router.get("/console/models")
async def models(
    request: Request,
    viewer: Annotated[Viewer, Depends(page_viewer("models"))],
    session: SessionDep,
) -> Response:
    org = viewer.ctx.org
    multiplier = multiplier_of(org.tier, org.power_level)
    rows = [model_out(e, multiplier) for e in await callable_models(session)]
    context = {
        "chat": [m for m in rows if m.type == "chat"],
        "media": [m for m in rows if m.type != "chat"],
        "multiplier": ratio(multiplier),
        "tier": org.tier,
        "power_level": org.power_level,
    }
    return render(request, "pages/models.html", context, viewer=viewer)
