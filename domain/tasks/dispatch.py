"""Sending a task upstream and asking after it: the side effects behind the task workflow.

Submission reuses the relay's routing (priority, weight, breakers). Each attempt is recorded
before its request leaves (`domain.tasks.submissions`) and carries the key
`task-{id}-{attempt}`, so a submit that finds an attempt whose answer never came (the worker
died in the call, or the read timed out) resolves that one first: it looks the job up by the
key where the provider allows it, else sends the same request again under the same key, and
adopts what comes back instead of starting another paid job. Jobs the task will not use are
cancelled upstream (`domain.tasks.orphans`). A task that already has its job is never
submitted again.
"""

from __future__ import annotations

import logging
import random
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from domain.crypto import SecretBox
from domain.errors import NotFound
from domain.pricing import repository as pricing_repo
from domain.providers import Upstream, UpstreamError
from domain.providers.media import MediaOutcome, MediaSubmission, MediaType, media_adapter_for
from domain.relay.plan import RelayConfig, order_channels, platform_upstream
from domain.routing import repository as channels_repo
from domain.tasks import orphans, service, submissions
from domain.tasks import repository as repo
from schema.channels import Channel
from schema.db import SessionFactory
from schema.tasks import Task, TaskSubmission
from schema.unit_of_work import unit_of_work

log = logging.getLogger("oxinf.tasks")

# Failures after which the request may still have reached the provider and made a job.
_ANSWER_LOST = frozenset({"timeout", "dropped", "malformed"})


class AllChannelsFailed(Exception):
    """Every channel failed in a retryable way: worth trying again a bit later."""


@dataclass(frozen=True)
class Submitted:
    status: str  # processing | succeeded | failed
    outcome: MediaOutcome | None = None
    error: dict[str, str] | None = None
    # Seconds after which stray upstream jobs are worth looking for; None: there can be none.
    reconcile_after_s: int | None = None


@dataclass(frozen=True)
class Ctx:
    sessions: SessionFactory
    http: httpx.AsyncClient
    box: SecretBox
    cfg: RelayConfig
    task: Task

    @property
    def media_type(self) -> MediaType:
        return media_type(self.task.type)

    def upstream(self, channel: Channel) -> Upstream:
        return platform_upstream(channel, self.task.model, self.box, self.cfg)


def answer_lost(err: UpstreamError) -> bool:
    return err.kind in _ANSWER_LOST


async def submit(
    sessions: SessionFactory,
    http: httpx.AsyncClient,
    box: SecretBox,
    cfg: RelayConfig,
    task_id: uuid.UUID,
    rng: random.Random,
) -> Submitted:
    done = await _submit(sessions, http, box, cfg, task_id, rng)
    async with unit_of_work(sessions) as session:
        after = await submissions.reconcile_after(
            session, task_id, answer_window=timedelta(seconds=cfg.upstream_timeout_s),
            now=datetime.now(UTC),
        )  # fmt: skip
    return replace(done, reconcile_after_s=after)


async def _submit(
    sessions: SessionFactory,
    http: httpx.AsyncClient,
    box: SecretBox,
    cfg: RelayConfig,
    task_id: uuid.UUID,
    rng: random.Random,
) -> Submitted:
    async with unit_of_work(sessions) as session:
        task = await repo.get(session, task_id)
        if task is None:
            raise NotFound("no such task")
        if task.status in repo.TERMINAL:
            return Submitted(status=task.status)
        winner = await repo.accepted_submission(session, task_id)
        if winner is not None:
            return _answer_of(winner)
        if task.upstream_job_id is not None:  # submitted before attempts were recorded
            return Submitted(status="processing")
        unanswered = await repo.submissions(session, task_id, states=("submitting",))
        info_group = await _group(session, task.model)
        channels = order_channels(
            await channels_repo.serving(session, task.model, task.type, info_group), rng
        )
    ctx = Ctx(sessions, http, box, cfg, task)
    for earlier in unanswered:
        done = await _settle_unanswered(ctx, earlier, None)
        if done is not None:
            return done
    last: UpstreamError | None = None
    tried = 0
    for channel in channels:
        if tried >= cfg.max_attempts_per_model:
            break
        if channel.breaker_state != "closed":
            async with unit_of_work(sessions) as session:
                claimed = await channels_repo.claim_trial(
                    session, channel.id, cfg.breaker_cooldown_s, cfg.clock.now()
                )
            if not claimed:
                continue
        tried += 1
        async with unit_of_work(sessions) as session:
            attempt = await submissions.begin_attempt(
                session, task_id, channel_id=channel.id, provider=channel.provider
            )
        if attempt is None:  # a concurrent attempt got there first
            return await _current(ctx)
        try:
            answer = await media_adapter_for(channel.provider).submit(
                http, ctx.upstream(channel), ctx.media_type, task.model, task.input,
                idempotency_key=attempt.idempotency_key,
            )  # fmt: skip
        except UpstreamError as err:
            last = err
            log.info("task submit failed", extra={"task": str(task_id), "kind": err.kind})
            if answer_lost(err):
                done = await _settle_unanswered(ctx, attempt, channel)
                if done is not None:
                    return done
            else:
                async with unit_of_work(sessions) as session:
                    await submissions.close(session, attempt, "refused", err.message)
                if err.kind == "invalid_request" or not err.retryable:
                    return _failed(err)
            async with unit_of_work(sessions) as session:
                await channels_repo.record_failure(
                    session, channel.id, cfg.breaker_threshold, cfg.clock.now()
                )
            continue
        return await _take(ctx, attempt, channel, answer)
    if last is None:
        return Submitted(
            status="failed",
            error={"code": "service_unavailable", "message": "no channel serves this model"},
        )
    raise AllChannelsFailed(last.message)


async def _settle_unanswered(
    ctx: Ctx, attempt: TaskSubmission, channel: Channel | None
) -> Submitted | None:
    """An attempt whose answer never came: adopt the job it made, if any, else send it again
    under the same key once. None: still no answer; the attempt is abandoned (reconciliation
    looks for its job later) and the caller moves on."""
    if channel is None and attempt.channel_id is not None:
        async with unit_of_work(ctx.sessions) as session:
            channel = await channels_repo.get_channel(session, attempt.channel_id)
    if channel is None:
        async with unit_of_work(ctx.sessions) as session:
            await submissions.close(session, attempt, "abandoned", "the channel was deleted")
        return None
    adapter = media_adapter_for(attempt.provider)
    upstream = ctx.upstream(channel)
    try:
        found = await adapter.find(ctx.http, upstream, ctx.media_type, attempt.idempotency_key)
    except UpstreamError as err:
        log.info("task job lookup failed", extra={"task": str(ctx.task.id), "kind": err.kind})
        found = None
    if found:
        log.info("adopting upstream job", extra={"task": str(ctx.task.id), "job": found[0]})
        return await _take(ctx, attempt, channel, None, found=found)
    async with unit_of_work(ctx.sessions) as session:
        await submissions.count_send(session, attempt)
    try:
        answer = await adapter.submit(
            ctx.http, upstream, ctx.media_type, ctx.task.model, ctx.task.input,
            idempotency_key=attempt.idempotency_key,
        )  # fmt: skip
    except UpstreamError as err:
        async with unit_of_work(ctx.sessions) as session:
            await submissions.close(session, attempt, "abandoned", err.message)
        if not answer_lost(err) and (err.kind == "invalid_request" or not err.retryable):
            return _failed(err)
        return None
    return await _take(ctx, attempt, channel, answer)


async def _take(
    ctx: Ctx,
    attempt: TaskSubmission,
    channel: Channel,
    answer: MediaSubmission | None,
    *,
    found: list[str] | None = None,
) -> Submitted:
    """Gives the task the job from `answer` (or the first of the jobs `found` under the
    attempt's key); every other job it turns up is an orphan, cancelled upstream."""
    job_id = answer.upstream_job_id if answer else next(iter(found or []), None)
    outcome = answer.outcome if answer else None
    async with unit_of_work(ctx.sessions) as session:
        acc = await submissions.accept(
            session, ctx.task.id, attempt, upstream_job_id=job_id, outcome=outcome,
            adopted=answer is None,
        )  # fmt: skip
        if acc.accepted and (channel.consecutive_failures or channel.breaker_state != "closed"):
            await channels_repo.record_success(session, channel.id)
    kept = acc.winner.upstream_job_id if acc.winner else None
    for stray in dict.fromkeys([job_id, *(found or [])]):
        if stray is None or (stray == kept and acc.winner and acc.winner.channel_id == channel.id):
            continue
        reason: submissions.OrphanReason = "lost_race" if stray == job_id else "duplicate"
        if acc.winner is None:
            reason = "task_finished"
        await orphans.dispose(
            ctx.sessions, ctx.http, ctx.task, ctx.upstream(channel), ctx.media_type,
            upstream_job_id=stray, channel_id=channel.id, submission=attempt, reason=reason,
        )  # fmt: skip
    if not acc.accepted:
        return _answer_of(acc.winner) if acc.winner else Submitted(status=acc.task_status)
    if outcome is None:
        return Submitted(status="processing")
    return Submitted(status=outcome.status, outcome=outcome)


def _answer_of(winner: TaskSubmission) -> Submitted:
    """What the winning attempt gave the task: a job to poll, or a synchronous result."""
    if winner.upstream_job_id is None and winner.outcome:
        outcome = MediaOutcome.from_dict(winner.outcome)
        return Submitted(status=outcome.status, outcome=outcome)
    return Submitted(status="processing")


async def _current(ctx: Ctx) -> Submitted:
    async with unit_of_work(ctx.sessions) as session:
        task = await repo.get(session, ctx.task.id)
        winner = await repo.accepted_submission(session, ctx.task.id)
    if task is not None and task.status in repo.TERMINAL:
        return Submitted(status=task.status)
    return _answer_of(winner) if winner else Submitted(status="processing")


def _failed(err: UpstreamError) -> Submitted:
    return Submitted(status="failed", error={"code": "upstream_error", "message": err.message})


async def poll(
    sessions: SessionFactory,
    http: httpx.AsyncClient,
    box: SecretBox,
    cfg: RelayConfig,
    task_id: uuid.UUID,
) -> MediaOutcome:
    """One look at the upstream job; progress is recorded while it runs."""
    async with unit_of_work(sessions) as session:
        task = await repo.get(session, task_id)
        if task is None:
            raise NotFound("task has no upstream job")
        job = await upstream_job(session, task, box, cfg)
    outcome = await media_adapter_for(job.provider).poll(
        http, job.upstream, media_type(task.type), job.job_id
    )
    if outcome.status == "processing" and outcome.progress != task.progress:
        async with unit_of_work(sessions) as session:
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
