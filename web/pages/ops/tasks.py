"""`/console/ops/tasks`: failed and stuck tasks, and the money schedules' runs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from starlette.responses import Response

from edge.deps import ResourcesDep, SessionDep
from web.errors import PageRoute
from web.pages.ops.common import operator
from web.render import render
from web.services.ops import tasks as ops_tasks
from web.viewer import Viewer

router = APIRouter(route_class=PageRoute, include_in_schema=False)

TasksViewer = Annotated[Viewer, operator("ops_tasks")]


@router.get("/console/ops/tasks")
async def tasks_page(
    request: Request, viewer: TasksViewer, session: SessionDep, resources: ResourcesDep
) -> Response:
    settings = resources.settings
    context = {
        "rows": await ops_tasks.problem_tasks(session),
        "schedules": await ops_tasks.schedules(
            resources.temporal.get, settings.temporal_ui, settings.temporal_namespace
        ),
        "window_days": ops_tasks.WINDOW.days,
        "stuck_minutes": int(ops_tasks.STUCK_AFTER.total_seconds() // 60),
    }
    return render(request, "pages/ops/tasks.html", context, viewer=viewer)
