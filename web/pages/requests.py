"""`/console/requests`: the org's request history and each request's customer-safe trace."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from edge.deps import SessionDep
from web.errors import PageRoute
from web.render import render
from web.services.requests import RequestFilters, request_detail, request_list
from web.viewer import Viewer, page_viewer

router = APIRouter(route_class=PageRoute, include_in_schema=False)
RequestsViewer = Annotated[Viewer, Depends(page_viewer("requests"))]


@router.get("/console/requests")
async def requests_page(
    request: Request,
    viewer: RequestsViewer,
    session: SessionDep,
    status: Annotated[str, Query(max_length=20)] = "",
    model: Annotated[str, Query(max_length=200)] = "",
    key: Annotated[str, Query(max_length=40)] = "",
    first: Annotated[str, Query(alias="from", max_length=10)] = "",
    last: Annotated[str, Query(alias="to", max_length=10)] = "",
    cursor: Annotated[str | None, Query(max_length=100)] = None,
) -> Response:
    filters = RequestFilters(status=status, model=model, key=key, first=first, last=last)
    listing = await request_list(session, viewer.ctx.org.id, filters, cursor or None)
    return render(request, "pages/requests.html", {"listing": listing}, viewer=viewer)


@router.get("/console/requests/{request_id}")
async def request_page(
    request: Request, request_id: str, viewer: RequestsViewer, session: SessionDep
) -> Response:
    detail = await request_detail(session, viewer.ctx.org.id, request_id)
    return render(request, "pages/request.html", {"detail": detail}, viewer=viewer)
