"""OpenAI-shaped shims over media tasks, so the official SDKs' image, video and speech calls
work unchanged; each one creates the same task (and workflow) as `POST /v1/tasks`.

A shim answers in the shape the SDK parses, or with an error the SDK raises, never with a task
body in place of a result (the SDK would read it as `data=None`, or save it as audio). Work
that outlasts `OXINF_SHIM_WAIT_S` is a 504 `timeout` naming the task, with
`x-should-retry: false` so the SDK does not start (and pay for) the same work again; the task
carries on, is charged once when it finishes, and `GET /v1/tasks/{id}` has its result.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import JSONResponse, Response

from api.auth import ApiKeyAuth
from api.errors import error_response
from api.relay.files import BlobDownload
from api.relay.media_bodies import IMAGES_BODY, SPEECH_BODY, VIDEOS_BODY
from api.relay.tasks import TasksKey, get_task_content, submit_task
from config.runtime import Resources
from domain.errors import InvalidField, InvalidRequest
from domain.inputs import Text
from domain.keys.auth import KeyPrincipal
from domain.results.repository import object_key
from domain.results.sources import decode_data_url
from domain.results.store import BlobNotFound
from domain.tasks import service as tasks
from domain.tasks.views import result_urls, stored_results
from edge.deps import ResourcesDep, SessionDep, public_base_url
from schema.tasks import Task
from schema.unit_of_work import unit_of_work

router = APIRouter(prefix="/v1", tags=["media shims"])

VIDEO_STATUS = {
    "pending": "queued",
    "processing": "in_progress",
    "succeeded": "completed",
    "failed": "failed",
    "canceled": "failed",
}


async def _body(request: Request) -> dict[str, Any]:
    """JSON, or the multipart form the OpenAI SDK sends for videos."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await request.form()
        return {k: v for k, v in form.items() if isinstance(v, str)}
    try:
        body = json.loads(await request.body())
    except (ValueError, RecursionError):  # RecursionError: nested deeper than Python goes
        raise InvalidRequest("request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object")
    return body


# The task's field names that a shim's caller spells otherwise (speech's text is `input`).
SPEECH_NAMES = {"text": "input", "input": "input", "format": "response_format"}
_INPUT_FIELD = re.compile(r"`input\.([A-Za-z_][\w.]*)`")


def _public(error: InvalidField, names: dict[str, str]) -> InvalidField:
    """The task validator names fields inside the task's `input` (`input.prompt`); a shim's
    caller sent them at the top level of its body, so name them as sent (`prompt`)."""

    def public(path: str) -> str:
        head, dot, rest = path.partition(".")
        return names.get(head, head) + dot + rest

    if error.param is None or not error.param.startswith("input."):
        return error
    message = _INPUT_FIELD.sub(lambda m: f"`{public(m.group(1))}`", error.message)
    renamed = InvalidField(message, param=public(error.param.removeprefix("input.")))
    renamed.headers = error.headers
    return renamed


async def _submit(
    resources: Resources,
    key: KeyPrincipal,
    request: Request,
    task_type: str,
    body: dict[str, Any],
    task_input: dict[str, Any],
    names: dict[str, str] | None = None,
) -> tuple[Task, dict[str, str]]:
    """Every shim creates the same task `POST /v1/tasks` would, honouring Idempotency-Key.

    In a unit of work of its own, not the request's: a shim goes on to wait for the task's
    workflow, which starts only once the task has committed (the unit of work's post-commit
    hook), so the submission must be committed, and its workflow started, before it returns.
    """
    try:
        async with unit_of_work(resources.sessions) as session:
            task, _, headers = await submit_task(
                resources, session, key, task_type=task_type, model=str(body.get("model") or ""),
                task_input=task_input, callback_url=None,
                idempotency_key=request.headers.get("idempotency-key"),
                request_id=request.state.request_id,
            )  # fmt: skip
    except InvalidField as error:
        raise _public(error, names or {}) from None
    return task, headers


async def _wait(resources: Resources, task: Task) -> Task:
    """Wait (bounded) for the task's workflow, then read its final row."""
    if task.status in ("pending", "processing"):
        client = await resources.temporal.get()
        handle = client.get_workflow_handle(tasks.workflow_id(task.id))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(handle.result(), timeout=resources.settings.shim_wait_s)
    async with unit_of_work(resources.sessions) as session:
        return await tasks.get_task(session, task.org_id, task.id)


def _failure(task: Task) -> JSONResponse:
    err = task.error or {}
    message = err.get("message") or "the task failed"
    return error_response(
        502,
        "upstream_error",
        message,
        headers={"X-Oxinf-Task-ID": str(task.id)},
        task_id=str(task.id),
    )


def _still_running(task: Task, wait_s: float) -> JSONResponse:
    """The SDK raises this (an `InternalServerError` with status 504) and, told so, does not
    retry: a retry would start and pay for the same work again."""
    return error_response(
        504,
        "timeout",
        f"task {task.id} is still running after {wait_s:g} s; it carries on and is charged "
        f"once when it finishes: poll GET /v1/tasks/{task.id} for its result",
        headers={"X-Oxinf-Task-ID": str(task.id), "x-should-retry": "false"},
        task_id=str(task.id),
    )


def _not_inlined(task: Task) -> JSONResponse:
    return error_response(
        502,
        "upstream_error",
        f"the result of task {task.id} could not be fetched from the provider to return it "
        f"here; GET /v1/tasks/{task.id} has its URLs",
        headers={"X-Oxinf-Task-ID": str(task.id), "x-should-retry": "false"},
        task_id=str(task.id),
    )


def _int(value: Any, name: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InvalidRequest(f"`{name}` must be an integer", param=name) from None


@router.post("/images/generations", response_model=None, openapi_extra={"requestBody": IMAGES_BODY})
async def images_generations(
    request: Request, key: ApiKeyAuth, resources: ResourcesDep
) -> JSONResponse:
    """`client.images.generate`: `response_format` `url` (signed URLs to 0xinf's copies, the
    default) or `b64_json` (the images themselves), for each of the `n` images."""
    body = await _body(request)
    response_format = body.get("response_format") or "url"
    if response_format not in ("url", "b64_json"):
        raise InvalidField("response_format must be url or b64_json", param="response_format")
    task_input = {k: v for k, v in body.items() if k not in ("model", "response_format", "user")}
    task, headers = await _submit(resources, key, request, "image", body, task_input)
    task = await _wait(resources, task)
    if task.status == "failed" or task.status == "canceled":
        return _failure(task)
    if task.status != "succeeded" or task.result is None:
        return _still_running(task, resources.settings.shim_wait_s)
    if response_format == "b64_json":
        images = await _inline_images(resources, task)
        if images is None:
            return _not_inlined(task)
        data = [{"b64_json": image} for image in images]
    else:
        base = public_base_url(request, resources)
        data = [{"url": url} for url in result_urls(task, base, resources.results.signer)]
    created = int(task.created_at.timestamp()) if task.created_at else 0
    return JSONResponse(
        {"created": created, "data": data},
        headers={**headers, "X-Oxinf-Task-ID": str(task.id)},
    )


async def _inline_images(resources: Resources, task: Task) -> list[str] | None:
    """Each image base64-encoded, from the result store, else from inline `data:` URLs;
    None when an image is only at a provider URL (its copy gave up)."""
    assert task.result is not None
    out: list[str] = []
    if stored_results(task):
        store = resources.results.store
        for index in range(len(stored_results(task))):
            try:
                blob = await store.open(object_key(task.id, index))
            except BlobNotFound:
                return None
            out.append(base64.b64encode(await blob.read()).decode("ascii"))
        return out
    for url in task.result.get("urls") or []:
        inline = decode_data_url(url) if isinstance(url, str) else None
        if inline is None:
            return None
        out.append(base64.b64encode(inline.data).decode("ascii"))
    return out


def _video(task: Task, base_url: str, resources: Resources) -> dict[str, Any]:
    seconds = task.input.get("seconds", 4)
    return {
        "id": str(task.id),
        "object": "video",
        "model": task.model,
        "status": VIDEO_STATUS[task.status],
        "progress": task.progress,
        "seconds": str(seconds),
        "size": task.input.get("size", "720x1280"),
        "created_at": int(task.created_at.timestamp()) if task.created_at else 0,
        "completed_at": int(task.finished_at.timestamp()) if task.finished_at else None,
        "error": task.error,
        "urls": result_urls(task, base_url, resources.results.signer),
    }


@router.post("/videos", openapi_extra={"requestBody": VIDEOS_BODY})
async def create_video(request: Request, key: ApiKeyAuth, resources: ResourcesDep) -> JSONResponse:
    body = await _body(request)
    task_input: dict[str, Any] = {"prompt": body.get("prompt")}
    seconds = _int(body.get("seconds"), "seconds")
    if seconds is not None:
        task_input["seconds"] = seconds
    if body.get("size"):
        task_input["size"] = body["size"]
    task, headers = await _submit(resources, key, request, "video", body, task_input)
    base = public_base_url(request, resources)
    return JSONResponse(_video(task, base, resources), headers=headers)


@router.get("/videos/{video_id}")
async def get_video(
    video_id: uuid.UUID,
    request: Request,
    key: TasksKey,
    resources: ResourcesDep,
    session: SessionDep,
) -> dict[str, Any]:
    task = await tasks.get_task(session, key.org_id, video_id)
    return _video(task, public_base_url(request, resources), resources)


@router.get("/videos/{video_id}/content", response_model=None)
async def get_video_content(
    video_id: uuid.UUID,
    key: TasksKey,
    resources: ResourcesDep,
    session: SessionDep,
    variant: Annotated[Text, Query(max_length=40)] = "video",
) -> Response:
    """`client.videos.download_content(id)` of the OpenAI SDK: the video task's content."""
    if variant != "video":
        raise InvalidRequest("only variant=video can be downloaded", param="variant")
    return await get_task_content(video_id, key, resources, session)


@router.post("/audio/speech", response_model=None, openapi_extra={"requestBody": SPEECH_BODY})
async def audio_speech(request: Request, key: ApiKeyAuth, resources: ResourcesDep) -> Response:
    """`client.audio.speech.create`: the audio bytes themselves, streamed."""
    body = await _body(request)
    if body.get("input") is None:
        raise InvalidField("`input` (the text to speak) is required", param="input")
    task_input = {
        "text": body.get("input"),
        "voice": body.get("voice") or "alloy",
        "format": body.get("response_format") or "mp3",
    }
    task, headers = await _submit(resources, key, request, "audio", body, task_input, SPEECH_NAMES)
    task = await _wait(resources, task)
    if task.status in ("failed", "canceled"):
        return _failure(task)
    if task.status != "succeeded" or task.result is None:
        return _still_running(task, resources.settings.shim_wait_s)
    headers = {**headers, "X-Oxinf-Task-ID": str(task.id)}
    if stored_results(task):
        try:
            blob = await resources.results.store.open(object_key(task.id, 0))
        except BlobNotFound:
            pass
        else:
            return BlobDownload(blob, headers)
    if not task.result.get("content_b64"):
        return _not_inlined(task)
    audio = base64.b64decode(task.result["content_b64"])
    media_type = task.result.get("content_type") or "audio/mpeg"
    return Response(audio, media_type=media_type, headers=headers)
