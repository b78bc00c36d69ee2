"""`/console` and `/console/quickstart`: the org's credits, the first-run checklist and the
snippets for a first call (one view, two pages)."""

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


async def _home_page(
    request: Request, viewer: Viewer, resources: ResourcesDep, session: SessionDep, template: str
) -> Response:
    view = await home_view(
        session,
        viewer.ctx,
        base_url=public_base_url(request, resources),
        catalog=plan_catalog(resources.settings),
    )
    return render(request, template, {"view": view}, viewer=viewer)


@router.get("/console")
async def home(
    request: Request,
    viewer: Annotated[Viewer, Depends(page_viewer("home"))],
    resources: ResourcesDep,
    session: SessionDep,
) -> Response:
    return await _home_page(request, viewer, resources, session, "pages/home.html")


@router.get("/console/quickstart")
async def quickstart(
    request: Request,
    viewer: Annotated[Viewer, Depends(page_viewer("quickstart"))],
    resources: ResourcesDep,
    session: SessionDep,
) -> Response:
    return await _home_page(request, viewer, resources, session, "pages/quickstart.html")
