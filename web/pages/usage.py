"""`/console/usage`: totals by day, model or key over a date range, a chart, and CSV."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from edge.deps import SessionDep
from web.errors import PageRoute
from web.render import PAGE_HEADERS, render
from web.services.usage import GROUPS, PageGroup, usage_csv, usage_view
from web.viewer import Viewer, page_viewer

router = APIRouter(route_class=PageRoute, include_in_schema=False)
UsageViewer = Annotated[Viewer, Depends(page_viewer("usage"))]
DateText = Annotated[str | None, Query(alias="from", max_length=10)]
ToText = Annotated[str | None, Query(alias="to", max_length=10)]


@router.get("/console/usage")
async def usage_page(
    request: Request,
    viewer: UsageViewer,
    session: SessionDep,
    first: DateText = None,
    last: ToText = None,
    group_by: PageGroup = "day",
) -> Response:
    view = await usage_view(session, viewer.ctx.org.id, first=first, last=last, group_by=group_by)
    return render(request, "pages/usage.html", {"view": view, "groups": GROUPS}, viewer=viewer)


@router.get("/console/usage.csv")
async def usage_download(
    viewer: UsageViewer,
    session: SessionDep,
    first: DateText = None,
    last: ToText = None,
    group_by: PageGroup = "day",
) -> Response:
    view = await usage_view(
        session, viewer.ctx.org.id, first=first, last=last, group_by=group_by, chart=False
    )
    name = f"usage-{view.range.first}-{view.range.last}-by-{group_by}.csv"
    headers = {
        **PAGE_HEADERS,
        "content-disposition": f'attachment; filename="{name}"',
    }
    return Response(usage_csv(view), media_type="text/csv; charset=utf-8", headers=headers)
