"""`/console/quickstart` and `/help/api-keys`: how to make a first call, and which kind of
key to use (the seed's BYOK vs platform comparison)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from config.settings import plan_catalog
from edge.deps import ResourcesDep, SessionDep, public_base_url
from web.errors import PageRoute
from web.render import render
from web.services.home import home_view
from web.viewer import Viewer, page_viewer

router = APIRouter(route_class=PageRoute, include_in_schema=False)


@router.get("/console/quickstart")
async def quickstart(
    request: Request,
    viewer: Annotated[Viewer, Depends(page_viewer("quickstart"))],
    resources: ResourcesDep,
    session: SessionDep,
) -> Response:
    view = await home_view(
        session,
        viewer.ctx,
        base_url=public_base_url(request, resources),
        catalog=plan_catalog(resources.settings),
    )
    return render(request, "pages/quickstart.html", {"view": view}, viewer=viewer)


@router.get("/help/api-keys")
async def help_api_keys(
    request: Request, viewer: Annotated[Viewer, Depends(page_viewer("help-keys"))]
) -> Response:
    return render(request, "pages/help_api_keys.html", viewer=viewer)
