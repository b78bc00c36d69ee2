"""`/v1/tasks`: async media generation, paid for before 202 and settled by a workflow."""

from __future__ import annotations

import contextlib
import logging
import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request
from pydantic import BaseModel, Field
from starlette.responses import JSONResponse
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError

from api.auth import ApiKeyAuth
from api.deps import ResourcesDep
from api.runtime import Resources
from domain.errors import ServiceUnavailable
from domain.keys.auth import KeyPrincipal
from domain.ratelimit import service as ratelimit
from domain.tasks import service as tasks
from domain.tasks.views import task_view
from schema.tasks import Task
from workflows.media import MediaTaskWorkflow, TaskRef

router = APIRouter(prefix="/v1", tags=["tasks"])
log = logging.getLogger("oxinf.tasks")


class TaskIn(BaseModel):
    type: Literal["image", "video", "audio"]
    model: str = Field(min_length=1, max_length=200)
    input: dict[str, Any]
    callback_url: str | None = Field(default=None, max_length=2000)


def task_config(resources: Resources) -> tasks.TaskConfig:
    s = resources.settings
    return tasks.TaskConfig(
        deadlines_s={
            "image": s.task_deadline_image_s,
            "video": s.task_deadline_video_s,
            "audio": s.task_deadline_audio_s,
        },
        callback_allow_private=s.callback_allow_private,
    )


async def submit_task(
    resources: Resources,
    key: KeyPrincipal,
    *,
    task_type: str,
    model: str,
    task_input: Any,
    callback_url: str | None,
    idempotency_key: str | None,
    request_id: str,
) -> tuple[Task, bool, dict[str, str]]:
    """Rate limit, create (reserving credits) and start the workflow after the commit."""
    headers: dict[str, str] = {}
    if key.rpm_limit is not None:
        async with resources.sessions.begin() as session:
            headers = (await ratelimit.hit(session, key.key_id, key.rpm_limit)).headers()
    cfg = task_config(resources)
    task, created = await tasks.create_task(
        resources.sessions, cfg, key, task_type=task_type, model=model, task_input=task_input,
        callback_url=callback_url, idempotency_key=idempotency_key, request_id=request_id,
    )  # fmt: skip
    if created:
        ref = TaskRef(
            task_id=str(task.id),
            deadline_s=int(cfg.deadline(task.type).total_seconds()),
            callback_url=task.callback_url,
            org_id=str(task.org_id),
        )
        try:
            client = await resources.temporal.get()
            await client.start_workflow(
                MediaTaskWorkflow.run, ref, id=tasks.workflow_id(task.id),
                task_queue=resources.settings.task_queue,
            )  # fmt: skip
        except Exception:
            log.exception("could not start task workflow; refunding", extra={"task": str(task.id)})
            async with resources.sessions.begin() as session:
                await tasks.finalize(
                    session, task.id, "failed",
                    error={"code": "service_unavailable", "message": "task could not be scheduled"},
                )  # fmt: skip
            raise ServiceUnavailable(
                "tasks cannot be scheduled right now; nothing was charged"
            ) from None
    else:
        headers["Idempotent-Replayed"] = "true"
    return task, created, headers


@router.post("/tasks", status_code=202)
async def create_task(
    body: TaskIn,
    request: Request,
    key: ApiKeyAuth,
    resources: ResourcesDep,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> JSONResponse:
    task, _, headers = await submit_task(
        resources, key, task_type=body.type, model=body.model, task_input=body.input,
        callback_url=body.callback_url, idempotency_key=idempotency_key,
        request_id=request.state.request_id,
    )  # fmt: skip
    return JSONResponse(task_view(task), status_code=202, headers=headers)


@router.get("/tasks/{task_id}")
async def get_task(task_id: uuid.UUID, key: ApiKeyAuth, resources: ResourcesDep) -> dict[str, Any]:
    async with resources.sessions() as session:
        return task_view(await tasks.get_task(session, key.org_id, task_id), include_content=True)


@router.get("/tasks")
async def list_tasks(
    key: ApiKeyAuth,
    resources: ResourcesDep,
    status: Literal["pending", "processing", "succeeded", "failed", "canceled"] | None = None,
    cursor: str | None = Query(default=None, max_length=100),
    limit: int = Query(default=20, ge=1, le=100),
) -> dict[str, Any]:
    async with resources.sessions() as session:
        page, next_cursor = await tasks.list_tasks(
            session, key.org_id, status=status, cursor=cursor, limit=limit
        )
    return {"object": "list", "data": [task_view(t) for t in page], "next_cursor": next_cursor}


@router.post("/tasks/{task_id}/cancel")
async def cancel_task(
    task_id: uuid.UUID, key: ApiKeyAuth, resources: ResourcesDep
) -> dict[str, Any]:
    """Cancels a running task and waits for its refund; a finished task is returned as is."""
    async with resources.sessions() as session:
        task = await tasks.get_task(session, key.org_id, task_id)
    if task.status in ("pending", "processing"):
        client = await resources.temporal.get()
        handle = client.get_workflow_handle(tasks.workflow_id(task_id))
        # A task that finished meanwhile rejects the update: its final state is in the database.
        with contextlib.suppress(WorkflowUpdateFailedError, RPCError):
            await handle.execute_update(MediaTaskWorkflow.cancel)
    async with resources.sessions() as session:
        return task_view(await tasks.get_task(session, key.org_id, task_id), include_content=True)
