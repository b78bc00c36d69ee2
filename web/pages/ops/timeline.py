"""`/console/ops/requests`: find a request or task by any id, and its support timeline."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from config.runtime import Resources
from edge.deps import ResourcesDep, SessionDep
from web.errors import PageRoute
from web.pages.ops.common import operator
from web.render import render
from web.services.ops import timeline
from web.viewer import Viewer

router = APIRouter(route_class=PageRoute, include_in_schema=False)

TimelineViewer = Annotated[Viewer, operator("ops_requests")]
HOME = "/console/ops/requests"
MAX_QUERY = 200


def temporal_ui(resources: Resources) -> timeline.TemporalUi:
    settings = resources.settings
    return timeline.TemporalUi(
        resources.temporal.get, settings.temporal_ui, settings.temporal_namespace
    )


@router.get(HOME)
async def lookup_page(
    request: Request, viewer: TimelineViewer, session: SessionDep, q: str = ""
) -> Response:
    """One match opens its timeline at once; several are listed (a provider may reuse an
    id); none says so."""
    query = q.strip()[:MAX_QUERY]
    matches = await timeline.lookup(session, query) if query else []
    if len(matches) == 1:
        return RedirectResponse(matches[0].href, status_code=303)
    context = {"query": query, "matches": matches}
    return render(request, "pages/ops/lookup.html", context, viewer=viewer)


@router.get(HOME + "/{request_id}")
async def request_page(
    request: Request,
    request_id: str,
    viewer: TimelineViewer,
    session: SessionDep,
    resources: ResourcesDep,
) -> Response:
    found = await timeline.request_timeline(session, request_id[:40], temporal_ui(resources))
    return render(request, "pages/ops/timeline.html", {"t": found}, viewer=viewer)


@router.get("/console/ops/tasks/{task_id}")
async def task_page(
    request: Request,
    task_id: uuid.UUID,
    viewer: TimelineViewer,
    session: SessionDep,
    resources: ResourcesDep,
) -> Response:
    found = await timeline.task_timeline(session, task_id, temporal_ui(resources))
    return render(request, "pages/ops/timeline.html", {"t": found}, viewer=viewer)
