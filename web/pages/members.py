"""`/console/members`: who belongs to the org (owners and admins only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from domain.enterprise import service as enterprise
from edge.deps import SessionDep
from web.errors import PageRoute
from web.render import render
from web.viewer import Viewer, page_viewer

router = APIRouter(route_class=PageRoute, include_in_schema=False)


@router.get("/console/members")
async def members(
    request: Request,
    viewer: Annotated[Viewer, Depends(page_viewer("members"))],
    session: SessionDep,
) -> Response:
    people = await enterprise.list_members(session, viewer.ctx)
    return render(request, "pages/members.html", {"members": people}, viewer=viewer)
