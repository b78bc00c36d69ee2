"""`/ops/v1`: operator drill-downs with every internal (channels, raw errors, holds, history).

Operators only: the `Operator` dependency runs before any lookup, so a developer learns
nothing (not even whether an id exists) from these routes.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter

from api.auth import Operator
from config.runtime import Resources
from domain.inputs import Text
from domain.ops import repository as ops_repo
from domain.ops import service as ops
from edge.deps import ResourcesDep, SessionDep

router = APIRouter(prefix="/ops/v1", tags=["ops"])

HEALTH_WINDOW = timedelta(hours=1)


def _as_task_id(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


async def _task_timeline(
    resources: Resources, session: SessionDep, task_id: uuid.UUID
) -> dict[str, Any]:
    settings = resources.settings
    return await ops.task_timeline(
        session,
        task_id,
        resources.temporal.get,
        ui_base=settings.temporal_ui,
        namespace=settings.temporal_namespace,
    )


@router.get("/requests/{request_id}")
async def get_request(request_id: Text, _: Operator, session: SessionDep) -> dict[str, Any]:
    return await ops.request_view(session, request_id[:40])


@router.get("/requests/{request_id}/timeline")
async def request_timeline(
    request_id: Text, _: Operator, resources: ResourcesDep, session: SessionDep
) -> dict[str, Any]:
    """Accepts a task id too, since support often only has the id a customer pasted."""
    task_id = _as_task_id(request_id)
    if task_id is not None:
        return await _task_timeline(resources, session, task_id)
    return await ops.request_timeline(session, request_id[:40])


@router.get("/tasks/{task_id}")
async def get_task(task_id: uuid.UUID, _: Operator, session: SessionDep) -> dict[str, Any]:
    return await ops.task_view(session, task_id)


@router.get("/tasks/{task_id}/timeline")
async def task_timeline(
    task_id: uuid.UUID, _: Operator, resources: ResourcesDep, session: SessionDep
) -> dict[str, Any]:
    return await _task_timeline(resources, session, task_id)


@router.get("/channels/health")
async def channels_health(_: Operator, session: SessionDep) -> dict[str, Any]:
    since = datetime.now(UTC) - HEALTH_WINDOW
    rows = await ops_repo.channel_health(session, since)
    return {"window_s": int(HEALTH_WINDOW.total_seconds()), "since": since, "data": rows}
