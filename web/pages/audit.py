"""`/console/audit`: the org's audit trail, filtered by actor, action, target and day, newest
first, a page at a time (owners and admins)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from edge.deps import SessionDep
from web.errors import PageRoute
from web.render import render
from web.services.audit import Filters, audit_view
from web.viewer import Viewer, page_viewer

router = APIRouter(route_class=PageRoute, include_in_schema=False)
PATH = "/console/audit"
AuditViewer = Annotated[Viewer, Depends(page_viewer("audit"))]


def _q(length: int) -> str:
    return Query(default="", max_length=length)  # type: ignore[no-any-return]


@router.get(PATH)
async def audit_page(
    request: Request,
    viewer: AuditViewer,
    session: SessionDep,
    actor: str = _q(320),
    action: str = _q(80),
    target_type: str = _q(40),
    target_id: str = _q(80),
    since: str = _q(10),
    until: str = _q(10),
    cursor: str = Query(default="", pattern=r"^\d{0,18}$"),
) -> Response:
    filters = Filters(actor, action, target_type, target_id, since, until)
    view = await audit_view(session, viewer.ctx, filters, int(cursor) if cursor else None)
    older = (
        f"{PATH}?{urlencode(filters.query(cursor=view.older_cursor))}"
        if view.older_cursor
        else None
    )
    newest = f"{PATH}?{urlencode(filters.query())}" if cursor else None
    context = {"view": view, "older_href": older, "newest_href": newest}
    return render(request, "pages/audit.html", context, viewer=viewer)
