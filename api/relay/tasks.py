"""`/v1/tasks`: async media generation, paid for before 202 and settled by a workflow."""

from __future__ import annotations

import logging
import uuid
from functools import partial
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError

from api.auth import ApiKeyAuth
from api.relay.files import BlobDownload
from config.runtime import Resources
from domain.inputs import ModelName, Text
from domain.keys.auth import KeyPrincipal
from domain.outages import DependencyUnavailable, dependency_down
from domain.providers.media_http import MediaContent
from domain.ratelimit import service as ratelimit
from domain.tasks import content
from domain.tasks import service as tasks
from domain.tasks.views import task_view
from edge.deps import ResourcesDep, SessionDep, public_base_url
from schema.tasks import Task
from schema.unit_of_work import after_commit, unit_of_work
from workflows.media import MediaTaskWorkflow

router = APIRouter(prefix="/v1", tags=["tasks"])
log = logging.getLogger("oxinf.tasks")


class TaskIn(BaseModel):
    type: Literal["image", "video", "audio"]
    model: ModelName
    input: dict[str, Any]
    callback_url: Text | None = Field(default=None, max_length=2000)


async def tasks_key(key: ApiKeyAuth) -> KeyPrincipal:
    tasks.require_scope(key)
    return key


TasksKey = Annotated[KeyPrincipal, Depends(tasks_key)]


def task_config(resources: Resources) -> tasks.TaskConfig:
    s = resources.settings
    return tasks.TaskConfig(
        deadlines_s={
            "image": s.task_deadline_image_s,
            "video": s.task_deadline_video_s,
            "audio": s.task_deadline_audio_s,
        },
        egress=s.tenant_egress,
    )


async def submit_task(
    resources: Resources,
    session: AsyncSession,
    key: KeyPrincipal,
    *,
    task_type: str,
    model: str,
    task_input: Any,
    callback_url: str | None,
    idempotency_key: str | None,
    request_id: str,
) -> tuple[Task, bool, dict[str, str]]:
    """Rate limit, create the task (reserving its credits) in the caller's unit of work, and
    start its workflow once that commits.

    The rate-limit hit is counted apart from the unit of work, as chat's is (one statement
    on the relay's direct pool, `ratelimit.hit_direct`): a task refused afterwards, for want
    of credits say, still counts against the key's window."""
    headers: dict[str, str] = {}
    if key.rpm_limit is not None:
        decision = await ratelimit.hit_direct(resources.relay.unflushed, key.key_id, key.rpm_limit)
        headers = decision.headers()
    cfg = task_config(resources)
    task, created = await tasks.create_task(
        session, cfg, key, task_type=task_type, model=model, task_input=task_input,
        callback_url=callback_url, idempotency_key=idempotency_key, request_id=request_id,
        memo=tasks.SharedReads(resources.relay.cache, resources.sessions),
    )  # fmt: skip
    if created:
        deadline_s = int(cfg.deadline(task.type).total_seconds())
        after_commit(session, partial(start_workflow, resources, task, deadline_s))
    else:
        headers["Idempotent-Replayed"] = "true"
    return task, created, headers


async def start_workflow(resources: Resources, task: Task, deadline_s: int) -> None:
    """Post-commit: the task and its hold are durable, so its workflow may start. If it
    cannot, the task is refunded (failed) in a unit of work of its own and the call answers
    503, rather than hold credits for a task that may never start. (If the start did land
    after all, the workflow finds the task failed and refunded, and ends without
    dispatching.)"""
    try:
        await resources.workflows.start_task(
            task.id, org_id=task.org_id, callback_url=task.callback_url, deadline_s=deadline_s
        )
    except Exception as exc:
        expected = dependency_down(exc) is not None or isinstance(exc, TimeoutError)
        log.log(
            logging.WARNING if expected else logging.ERROR,
            "could not start task workflow; refunding",
            extra={"task": str(task.id), "error": type(exc).__name__},
            exc_info=not expected,
        )
        async with unit_of_work(resources.sessions) as session:
            await tasks.finalize(
                session, task.id, "failed",
                error={"code": "service_unavailable", "message": "task could not be scheduled"},
            )  # fmt: skip
        raise DependencyUnavailable(
            "temporal", "tasks cannot be started right now; nothing was charged, retry shortly"
        ) from exc


@router.post("/tasks", status_code=202)
async def create_task(
    body: TaskIn,
    request: Request,
    key: ApiKeyAuth,
    resources: ResourcesDep,
    session: SessionDep,
    idempotency_key: Annotated[Text | None, Header(max_length=200)] = None,
) -> JSONResponse:
    task, _, headers = await submit_task(
        resources, session, key, task_type=body.type, model=body.model, task_input=body.input,
        callback_url=body.callback_url, idempotency_key=idempotency_key,
        request_id=request.state.request_id,
    )  # fmt: skip
    view = task_view(
        task, base_url=public_base_url(request, resources), signer=resources.results.signer
    )
    return JSONResponse(view, status_code=202, headers=headers)


@router.get("/tasks/{task_id}")
async def get_task(
    task_id: uuid.UUID,
    request: Request,
    key: TasksKey,
    resources: ResourcesDep,
    session: SessionDep,
) -> dict[str, Any]:
    task = await tasks.get_task(session, key.org_id, task_id)
    return task_view(
        task,
        include_content=True,
        base_url=public_base_url(request, resources),
        signer=resources.results.signer,
    )


@router.get("/tasks/{task_id}/content", response_model=None)
async def get_task_content(
    task_id: uuid.UUID,
    key: TasksKey,
    resources: ResourcesDep,
    session: SessionDep,
    index: Annotated[int, Query(ge=0, le=1000, description="which result, for n > 1")] = 0,
) -> Response:
    """The task's result itself: results in the result store, stored bytes and channel-held
    videos are sent from here, public URLs are a 307 to the URL (see `domain.tasks.content`).
    A streamed body goes out after the request's unit of work has closed: no connection is
    held while it downloads."""
    found = await content.open_task_content(
        session, resources.http, resources.secret_box, resources.relay.cfg,
        key.org_id, task_id, index=index, store=resources.results.store,
    )  # fmt: skip
    return content_response(found)


def content_response(found: content.TaskContent) -> Response:
    if isinstance(found, content.Redirect):
        return RedirectResponse(found.url, status_code=307)
    disposition = {"Content-Disposition": f'attachment; filename="{found.filename}"'}
    if isinstance(found, content.Stored):
        return BlobDownload(found.blob, disposition)
    if isinstance(found, content.Inline):
        return Response(found.data, media_type=found.content_type, headers=disposition)
    return UpstreamDownload(found.content, disposition)


class UpstreamDownload(StreamingResponse):
    """Streams an upstream download through, chunk by chunk, and always closes it: when the
    body is done, when the client hangs up, and when the upstream fails part way (the error
    propagates so the server aborts the response instead of ending it as if complete)."""

    def __init__(self, upstream: MediaContent, headers: dict[str, str]) -> None:
        if upstream.content_length is not None:
            headers = {**headers, "Content-Length": str(upstream.content_length)}
        super().__init__(upstream.chunks(), media_type=upstream.content_type, headers=headers)
        self.upstream = upstream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.upstream.aclose()


@router.get("/tasks")
async def list_tasks(
    request: Request,
    key: TasksKey,
    resources: ResourcesDep,
    session: SessionDep,
    status: Literal["pending", "processing", "succeeded", "failed", "canceled"] | None = None,
    cursor: Text | None = Query(default=None, max_length=100),
    limit: int = Query(default=20, ge=1, le=100),
) -> dict[str, Any]:
    page, next_cursor = await tasks.list_tasks(
        session, key.org_id, status=status, cursor=cursor, limit=limit
    )
    base = public_base_url(request, resources)
    data = [task_view(t, base_url=base, signer=resources.results.signer) for t in page]
    return {"object": "list", "data": data, "next_cursor": next_cursor}


@router.post("/tasks/{task_id}/cancel")
async def cancel_task(
    task_id: uuid.UUID,
    request: Request,
    key: TasksKey,
    resources: ResourcesDep,
    session: SessionDep,
) -> dict[str, Any]:
    """Cancels a running task and waits for its refund; a finished task is returned as is.
    (The second read sees the workflow's refund: each statement reads what has committed.)"""
    task = await tasks.get_task(session, key.org_id, task_id)
    if task.status in ("pending", "processing"):
        client = await resources.temporal.get()
        handle = client.get_workflow_handle(tasks.workflow_id(task_id))
        # A task that finished meanwhile rejects the update: its final state is in the database.
        try:
            await handle.execute_update(MediaTaskWorkflow.cancel)
        except WorkflowUpdateFailedError:
            pass
        except RPCError as exc:
            if dependency_down(exc) is not None:
                raise  # Temporal is unreachable: nothing was cancelled (503)
    task = await tasks.get_task(session, key.org_id, task_id)
    return task_view(
        task,
        include_content=True,
        base_url=public_base_url(request, resources),
        signer=resources.results.signer,
    )
