"""Copying a succeeded task's results into the result store, before the task is marked
succeeded (the workflow's store step).

Idempotent, so Temporal may retry it freely: every result goes to the deterministic key
`tasks/{task id}/{index}` (a retry writes over its own earlier try, and a put is atomic, so no
reader ever sees half an object), and a result whose row says `stored` is not fetched again.
Each result is bounded in size (per task type) and time; nothing is held whole in memory
except what already arrived whole (speech, `data:` URLs).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from domain.crypto import SecretBox
from domain.providers.media import MediaOutcome, media_adapter_for
from domain.providers.media_http import OCTET_STREAM, auth_headers
from domain.relay.plan import RelayConfig, platform_upstream
from domain.results import repository as repo
from domain.results.sources import (
    CopyError,
    Inline,
    Remote,
    ResultSource,
    TrustedOrigin,
    decode_data_url,
    guess_type,
    open_download,
)
from domain.results.store import BlobStore
from domain.routing import repository as channels_repo
from domain.tasks import repository as tasks_repo
from schema.db import SessionFactory
from schema.tasks import Task
from schema.unit_of_work import unit_of_work

log = logging.getLogger("oxinf.results")

MiB = 1024 * 1024
_FALLBACK_TYPES = {"image": "image/png", "video": "video/mp4", "audio": "audio/mpeg"}
# Served from our own origin later: only media of the task's own kind keeps its type (SVG
# can carry script), anything else is stored as opaque bytes.
_UNSAFE_TYPES = frozenset({"image/svg+xml"})


def safe_type(content_type: str, task_type: str) -> str:
    if content_type.startswith(f"{task_type}/") and content_type not in _UNSAFE_TYPES:
        return content_type
    return OCTET_STREAM


@dataclass(frozen=True)
class CopyLimits:
    max_bytes: Mapping[str, int] = field(
        default_factory=lambda: {"image": 64 * MiB, "video": 512 * MiB, "audio": 64 * MiB}
    )
    timeout_s: float = 600.0  # per result, from the first byte asked for to the last stored

    def for_type(self, task_type: str) -> int:
        return self.max_bytes.get(task_type, 64 * MiB)


@dataclass(frozen=True)
class StoredResult:
    index: int
    content_type: str
    size: int

    def to_dict(self) -> dict[str, object]:
        return {"index": self.index, "content_type": self.content_type, "bytes": self.size}


@dataclass(frozen=True)
class Clients:
    """`channel`: the upstream client operators' channels use; `public`: the tenant egress
    policy's pinned client, for every other host."""

    channel: httpx.AsyncClient
    public: httpx.AsyncClient


def sources_of(outcome: MediaOutcome) -> list[ResultSource]:
    """The results, in order: inline speech, then each URL (`data:` ones decoded)."""
    if outcome.content_b64 and not outcome.urls:
        try:
            data = base64.b64decode(outcome.content_b64, validate=True)
        except (binascii.Error, ValueError):
            raise CopyError("the stored result is not valid base64", permanent=True) from None
        return [Inline(data, outcome.content_type or OCTET_STREAM)]
    out: list[ResultSource] = []
    for url in outcome.urls:
        inline = decode_data_url(url) if url.startswith("data:") else None
        out.append(inline if inline is not None else Remote(url))
    return out


async def copy_results(
    sessions: SessionFactory,
    store: BlobStore,
    clients: Clients,
    box: SecretBox,
    cfg: RelayConfig,
    limits: CopyLimits,
    task_id: uuid.UUID,
    outcome: MediaOutcome,
) -> list[StoredResult]:
    """Stores every result of `outcome` and returns them, index by index; raises `CopyError`
    (with `index` set) at the first that cannot be copied."""
    async with unit_of_work(sessions) as session:
        task = await tasks_repo.get(session, task_id)
        if task is None:
            raise CopyError("no such task", permanent=True)
        done = await repo.stored_indexes(session, task_id)
        trusted = await _channel_origin(session, task, box, cfg)
    out: list[StoredResult] = []
    for index, source in enumerate(sources_of(outcome)):
        row = done.get(index)
        if row is not None and row.size_bytes is not None:
            out.append(StoredResult(index, row.content_type or OCTET_STREAM, row.size_bytes))
            continue
        key = repo.object_key(task.id, index)
        try:
            async with asyncio.timeout(limits.timeout_s):
                content_type, size = await _copy_one(
                    store, clients, trusted, source, key,
                    task_type=task.type,
                    limit=limits.for_type(task.type),
                    timeout_s=limits.timeout_s,
                )  # fmt: skip
        except TimeoutError:
            err = CopyError(f"the copy took longer than {limits.timeout_s:g} s")
            err.index = index
            raise err from None
        except CopyError as err:
            err.index = index
            raise
        async with unit_of_work(sessions) as session:
            await repo.record_stored(
                session, task_id=task.id, org_id=task.org_id, index=index,
                content_type=content_type, size=size,
            )  # fmt: skip
        out.append(StoredResult(index, content_type, size))
    log.info("task results stored", extra={"task": str(task_id), "results": len(out)})
    return out


async def record_gave_up(
    session: AsyncSession, task: Task, outcome: MediaOutcome, error: dict[str, Any]
) -> None:
    """The copy gave up: a `failed` row for the result it stopped at (the first not stored,
    when it did not say), so operators see it in `/metrics` and the task's timeline."""
    index = error.get("index")
    if not isinstance(index, int) or index < 0:
        done = await repo.stored_indexes(session, task.id)
        count = max(1, len(outcome.urls))
        index = next((i for i in range(count) if i not in done), 0)
    message = str(error.get("message") or "the copy failed")
    await repo.record_failure(
        session, task_id=task.id, org_id=task.org_id, index=index, error=message
    )
    log.warning(
        "task results not stored; the provider's URLs stay",
        extra={"task": str(task.id), "index": index, "error": message},
    )


async def _copy_one(
    store: BlobStore,
    clients: Clients,
    trusted: TrustedOrigin | None,
    source: ResultSource,
    key: str,
    *,
    task_type: str,
    limit: int,
    timeout_s: float,
) -> tuple[str, int]:
    if isinstance(source, Inline):
        if len(source.data) > limit:
            raise CopyError(f"the result is larger than {limit} bytes", permanent=True)
        content_type = safe_type(source.content_type, task_type)
        return content_type, await store.put(key, _once(source.data), content_type)
    download = await open_download(
        source.url, trusted=trusted, channel_http=clients.channel, public_http=clients.public,
        read_timeout_s=timeout_s,
    )  # fmt: skip
    try:
        content_type = download.content_type
        if content_type == OCTET_STREAM:
            fallback = _FALLBACK_TYPES.get(task_type, OCTET_STREAM)
            content_type = guess_type(download.url, fallback)
        content_type = safe_type(content_type, task_type)
        size = await store.put(key, download.chunks(limit), content_type)
    finally:
        await download.aclose()
    return content_type, size


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _channel_origin(
    session: AsyncSession, task: Task, box: SecretBox, cfg: RelayConfig
) -> TrustedOrigin | None:
    """The origin of the channel that produced the result, with its credentials when the
    provider's results only open with them."""
    if task.channel_id is None:
        return None
    channel = await channels_repo.get_channel(session, task.channel_id)
    if channel is None:
        return None
    upstream = platform_upstream(channel, task.model, box, cfg)
    if not upstream.base_url:
        return None
    headers: dict[str, str] = {}
    try:
        if media_adapter_for(channel.provider).content_needs_channel(task.type):  # type: ignore[arg-type]
            headers = auth_headers(upstream)
    except ValueError:
        pass
    return TrustedOrigin.of(upstream.base_url, headers)
