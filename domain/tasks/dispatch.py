"""Sending a task upstream and asking after it: the side effects behind the task workflow.

Submission reuses the relay's routing (priority, weight, breakers); a task that already has
an upstream job is never submitted again, so a retried activity does not start a second
(paid) upstream job once the first one was recorded.
"""

from __future__ import annotations

import logging
import random
import uuid
from dataclasses import dataclass

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from domain.crypto import SecretBox
from domain.errors import NotFound
from domain.pricing import repository as pricing_repo
from domain.providers import Upstream, UpstreamError
from domain.providers.media import MediaOutcome, MediaType, media_adapter_for
from domain.relay.plan import RelayConfig, order_channels, platform_upstream
from domain.routing import repository as channels_repo
from domain.tasks import repository as repo
from domain.tasks import service
from schema.db import SessionFactory
from schema.tasks import Task

log = logging.getLogger("oxinf.tasks")


class AllChannelsFailed(Exception):
    """Every channel failed in a retryable way: worth trying again a bit later."""


@dataclass(frozen=True)
class Submitted:
    status: str  # processing | succeeded | failed
    outcome: MediaOutcome | None = None
    error: dict[str, str] | None = None


async def submit(
    sessions: SessionFactory,
    http: httpx.AsyncClient,
    box: SecretBox,
    cfg: RelayConfig,
    task_id: uuid.UUID,
    rng: random.Random,
) -> Submitted:
    async with sessions() as session:
        task = await repo.get(session, task_id)
        if task is None:
            raise NotFound("no such task")
        if task.status in repo.TERMINAL:
            return Submitted(status=task.status)
        if task.upstream_job_id is not None:
            return Submitted(status="processing")
        info_group = await _group(session, task.model)
        channels = order_channels(
            await channels_repo.serving(session, task.model, task.type, info_group), rng
        )
    last: UpstreamError | None = None
    tried = 0
    for channel in channels:
        if tried >= cfg.max_attempts_per_model:
            break
        if channel.breaker_state != "closed":
            async with sessions.begin() as session:
                if not await channels_repo.claim_trial(session, channel.id, cfg.breaker_cooldown_s):
                    continue
        tried += 1
        upstream = platform_upstream(channel, task.model, box, cfg)
        try:
            sub = await media_adapter_for(channel.provider).submit(
                http, upstream, media_type(task.type), task.model, task.input
            )
        except UpstreamError as err:
            last = err
            log.info("task submit failed", extra={"task": str(task_id), "kind": err.kind})
            if err.kind == "invalid_request" or not err.retryable:
                return Submitted(
                    status="failed", error={"code": "upstream_error", "message": err.message}
                )
            async with sessions.begin() as session:
                await channels_repo.record_failure(session, channel.id, cfg.breaker_threshold)
            continue
        async with sessions.begin() as session:
            await service.mark_processing(
                session, task_id, provider=channel.provider, channel_id=channel.id,
                upstream_job_id=sub.upstream_job_id,
            )  # fmt: skip
            if channel.consecutive_failures or channel.breaker_state != "closed":
                await channels_repo.record_success(session, channel.id)
        return Submitted(status=sub.outcome.status, outcome=sub.outcome)
    if last is None:
        return Submitted(
            status="failed",
            error={"code": "service_unavailable", "message": "no channel serves this model"},
        )
    raise AllChannelsFailed(last.message)


async def poll(
    sessions: SessionFactory,
    http: httpx.AsyncClient,
    box: SecretBox,
    cfg: RelayConfig,
    task_id: uuid.UUID,
) -> MediaOutcome:
    """One look at the upstream job; progress is recorded while it runs."""
    async with sessions() as session:
        task = await repo.get(session, task_id)
        if task is None:
            raise NotFound("task has no upstream job")
        job = await upstream_job(session, task, box, cfg)
    outcome = await media_adapter_for(job.provider).poll(
        http, job.upstream, media_type(task.type), job.job_id
    )
    if outcome.status == "processing" and outcome.progress != task.progress:
        async with sessions.begin() as session:
            await service.record_progress(session, task_id, outcome.progress)
    return outcome


@dataclass(frozen=True)
class UpstreamJob:
    provider: str
    upstream: Upstream
    job_id: str


async def upstream_job(
    session: AsyncSession, task: Task, box: SecretBox, cfg: RelayConfig
) -> UpstreamJob:
    """Where the task's upstream job lives and the credentials that open it: those of the
    channel that accepted it (`tasks.channel_id`), decrypted here and never stored or shown.

    Polls and result downloads both go through this, so they always ask the upstream that
    holds the job with the key that created it. Tasks run on platform channels only
    (`tasks.billing` is always `platform`; task routing has no BYOK path).
    """
    if task.channel_id is None or task.upstream_job_id is None:
        raise NotFound("task has no upstream job")
    channel = await channels_repo.get_channel(session, task.channel_id)
    if channel is None:
        raise NotFound("the task's channel was deleted")
    upstream = platform_upstream(channel, task.model, box, cfg)
    return UpstreamJob(channel.provider, upstream, task.upstream_job_id)


def media_type(value: str) -> MediaType:
    if value not in ("image", "video", "audio"):
        raise ValueError(f"not a media type: {value!r}")
    return value  # type: ignore[return-value]


async def _group(session: AsyncSession, model: str) -> str:
    info = await pricing_repo.get_model(session, model)
    return info.channel_group if info else "default"
