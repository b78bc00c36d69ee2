"""`/console/tasks`: the org's async media tasks and each task's result and callbacks.

The detail page previews results from signed URLs that may live on another host (a result
store's public URL, a provider's CDN), so it widens the page policy for media (`img-src`,
`media-src`) to https; scripts stay same-origin only.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from domain.errors import NotFound
from edge.deps import ResourcesDep, SessionDep, public_base_url
from web.errors import PageRoute
from web.render import CSP, render
from web.services.tasks import task_detail, task_list
from web.viewer import Viewer, page_viewer

router = APIRouter(route_class=PageRoute, include_in_schema=False)
TasksViewer = Annotated[Viewer, Depends(page_viewer("tasks"))]
MEDIA_CSP = CSP.replace("img-src 'self' data:", "img-src 'self' data: https:") + (
    "; media-src 'self' https:"
)


@router.get("/console/tasks")
async def tasks_page(
    request: Request,
    viewer: TasksViewer,
    resources: ResourcesDep,
    session: SessionDep,
    status: Annotated[str, Query(max_length=20)] = "",
    cursor: Annotated[str | None, Query(max_length=100)] = None,
) -> Response:
    listing = await task_list(
        session,
        viewer.ctx.org.id,
        status=status,
        cursor=cursor or None,
        base_url=public_base_url(request, resources),
        signer=resources.results.signer,
    )
    return render(request, "pages/tasks.html", {"listing": listing}, viewer=viewer)


@router.get("/console/tasks/{task_id}")
async def task_page(
    request: Request,
    task_id: str,
    viewer: TasksViewer,
    resources: ResourcesDep,
    session: SessionDep,
) -> Response:
    try:
        parsed = uuid.UUID(task_id)
    except ValueError:
        raise NotFound("There is no task with this id in this organization.") from None
    detail = await task_detail(
        session,
        viewer.ctx.org.id,
        parsed,
        base_url=public_base_url(request, resources),
        signer=resources.results.signer,
    )
    response = render(request, "pages/task.html", {"detail": detail}, viewer=viewer)
    response.headers["content-security-policy"] = MEDIA_CSP
    return response
