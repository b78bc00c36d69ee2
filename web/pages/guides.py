"""`/help/api-keys`: which kind of key to use (the seed's BYOK vs platform comparison)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from web.errors import PageRoute
from web.render import render
from web.viewer import Viewer, page_viewer

router = APIRouter(route_class=PageRoute, include_in_schema=False)


@router.get("/help/api-keys")
async def help_api_keys(
    request: Request, viewer: Annotated[Viewer, Depends(page_viewer("help-keys"))]
) -> Response:
    return render(request, "pages/help_api_keys.html", viewer=viewer)
