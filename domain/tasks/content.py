"""Downloading a task's result: `GET /v1/tasks/{id}/content`.

A succeeded task's results copied into the result store are streamed from there (so they
outlive the provider's copy). Otherwise the result is one of three things, each served the
way a client expects of a download link:

- bytes stored on the task (speech): sent as stored, with their content type;
- a result held upstream behind the channel's key (OpenAI video): streamed through with that
  key, which never leaves the gateway;
- URLs the provider serves publicly (images, `jobs` videos, the demo): a redirect to the one
  asked for; inline `data:` URLs (images the provider returned as base64) are decoded and sent.

Only the task's own org can read it: another org's task is "no such task", exactly like an
unknown id. A task that has not succeeded has nothing to download yet (or ever): `conflict`.
"""

from __future__ import annotations

import base64
import binascii
import logging
import uuid
from dataclasses import dataclass

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from domain.crypto import SecretBox
from domain.errors import Conflict, DomainError, NotFound
from domain.providers import UpstreamError
from domain.providers.media import media_adapter_for
from domain.providers.media_http import MediaContent, clean_content_type
from domain.relay.plan import RelayConfig
from domain.results.repository import object_key
from domain.results.store import Blob, BlobNotFound, BlobStore
from domain.tasks import dispatch, service
from domain.tasks.views import (
    held_upstream,
    results_deleted,
    stored_bytes,
    stored_results,
)
from schema.tasks import Task

log = logging.getLogger("oxinf.tasks")

_EXTENSIONS = {
    "audio/mpeg": "mp3",
    "audio/mp3": "mp3",
    "audio/ogg": "ogg",
    "audio/opus": "opus",
    "audio/aac": "aac",
    "audio/flac": "flac",
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/wave": "wav",
    "audio/pcm": "pcm",
    "video/mp4": "mp4",
    "video/webm": "webm",
    "video/quicktime": "mov",
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/webp": "webp",
    "image/gif": "gif",
}
DELETED_MESSAGE = (
    "this result was deleted under your organization's retention window; submit the task "
    "again to get a new one"
)
GONE_MESSAGE = (
    "the provider no longer has this result (downloads expire some time after a task "
    "succeeds); submit the task again to get a new one"
)


class ContentUpstreamError(DomainError):
    """The upstream holding the result failed to hand it over; the message is sanitized."""

    code = "upstream_error"


@dataclass(frozen=True)
class Inline:
    data: bytes
    content_type: str
    filename: str


@dataclass(frozen=True)
class Streamed:
    """An open upstream download: the caller streams `content.chunks()` and closes it."""

    content: MediaContent
    filename: str


@dataclass(frozen=True)
class Redirect:
    url: str


@dataclass(frozen=True)
class Stored:
    """A result in the result store, opened: the caller streams `blob.chunks()`."""

    blob: Blob
    filename: str


TaskContent = Inline | Streamed | Redirect | Stored


def filename(task_id: uuid.UUID, content_type: str, index: int = 0) -> str:
    stem = str(task_id) if index == 0 else f"{task_id}-{index}"
    return f"{stem}.{_EXTENSIONS.get(content_type, 'bin')}"


def _check_ready(task: Task) -> None:
    if task.status in ("pending", "processing"):
        raise Conflict(
            f"task {task.id} is {task.status}; its content can be downloaded once it has "
            "succeeded (poll GET /v1/tasks/{id} or use a callback_url)"
        )
    if task.status != "succeeded":
        raise Conflict(f"task {task.id} {task.status}, so it has no content to download")


def _out_of_range(task: Task, count: int, index: int) -> NotFound:
    if count == 0:
        return NotFound(f"task {task.id} has no result to download")
    return NotFound(
        f"task {task.id} has {count} result(s); there is none at index {index}", param="index"
    )


async def open_task_content(
    session: AsyncSession,
    http: httpx.AsyncClient,
    box: SecretBox,
    cfg: RelayConfig,
    org_id: uuid.UUID,
    task_id: uuid.UUID,
    *,
    index: int = 0,
    store: BlobStore | None = None,
) -> TaskContent:
    """The task's `index`-th result, ready to send. A `Streamed` result is an open upstream
    connection: the caller must close it, and should end its unit of work before sending
    the body (the routes do: a download can take minutes, its body is sent after the
    request's unit of work has ended)."""
    task = await service.get_task(session, org_id, task_id)
    _check_ready(task)
    if results_deleted(task):
        raise NotFound(f"task {task.id}: {DELETED_MESSAGE}")
    job: dispatch.UpstreamJob | None = None
    if held_upstream(task):
        try:
            job = await dispatch.upstream_job(session, task, box, cfg)
        except NotFound:
            if not stored_results(task):
                raise _gone(task) from None
    stored = stored_results(task)
    if stored and store is not None:
        if index >= len(stored):
            raise _out_of_range(task, len(stored), index)
        found = await open_stored(store, task, index)
        if found is not None:
            return found
        if job is None and held_upstream(task):
            raise _gone(task)
    if (job is not None or stored_bytes(task)) and index != 0:
        raise _out_of_range(task, 1, index)
    if job is not None:
        return await _stream(http, task, job)
    if stored_bytes(task):
        return _inline_bytes(task)
    urls = list((task.result or {}).get("urls") or [])
    if index >= len(urls):
        raise _out_of_range(task, len(urls), index)
    return _from_url(task, urls[index], index)


def _gone(task: Task) -> NotFound:
    return NotFound(f"task {task.id}'s result is no longer available")


async def open_stored(store: BlobStore, task: Task, index: int) -> Stored | None:
    """The stored result, or None when the store lost it (the provider's copy is tried)."""
    try:
        blob = await store.open(object_key(task.id, index))
    except BlobNotFound:
        log.warning("stored task result missing", extra={"task": str(task.id), "index": index})
        return None
    return Stored(blob, filename(task.id, blob.info.content_type, index))


def _inline_bytes(task: Task) -> Inline:
    assert task.result is not None
    content_type = clean_content_type(task.result.get("content_type"))
    data = base64.b64decode(task.result["content_b64"])
    return Inline(data, content_type, filename(task.id, content_type))


async def _stream(http: httpx.AsyncClient, task: Task, job: dispatch.UpstreamJob) -> Streamed:
    adapter = media_adapter_for(job.provider)
    try:
        content = await adapter.content(
            http, job.upstream, dispatch.media_type(task.type), job.job_id
        )
    except UpstreamError as err:
        # Both the message and the excerpt are redacted; the key never reaches a log line.
        log.warning(
            "task content download failed",
            extra={
                "task": str(task.id),
                "kind": err.kind,
                "upstream_status": err.status,
                "upstream_request_id": err.upstream_request_id,
            },
        )
        if err.kind == "not_found" or err.status == 410:
            raise NotFound(f"task {task.id}: {GONE_MESSAGE}") from None
        headers = {"Retry-After": str(err.retry_after_s)} if err.retry_after_s else None
        raise ContentUpstreamError(
            f"could not download the task's result: {err.message}", headers=headers
        ) from None
    return Streamed(content, filename(task.id, content.content_type))


def _from_url(task: Task, url: str, index: int) -> Inline | Redirect:
    if url.startswith(("https://", "http://")):
        return Redirect(url)
    if url.startswith("data:"):
        header, sep, payload = url.removeprefix("data:").partition(",")
        if sep and header.endswith(";base64"):
            try:
                data = base64.b64decode(payload, validate=True)
            except (binascii.Error, ValueError):
                data = None
            if data is not None:
                content_type = clean_content_type(header.removesuffix(";base64"))
                return Inline(data, content_type, filename(task.id, content_type, index))
    raise NotFound(f"task {task.id}'s result {index} cannot be downloaded here; see result.urls")
