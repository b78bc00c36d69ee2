"""Upstream jobs a task will not use, and stopping them before the platform pays for them.

An orphan turns up when a job is found under one of the task's keys next to the job the task
adopted (a provider that ignores idempotency keys made one per send), when two attempts race
and one loses, or when an answer arrives after the task ended. Each is recorded
(`task_orphan_jobs`, counted in `/metrics`, shown in the ops timeline) and cancelled
upstream. `reconcile` runs after the task has settled, when `submissions.reconcile_after`
says an earlier attempt may still hide a job, and retries cancellations that failed.

Recording and cancelling are separate units of work: an orphan is durable before its
cancel goes upstream, and the cancel's outcome is recorded after it answers.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

import httpx

from domain.crypto import SecretBox
from domain.errors import NotFound
from domain.providers import Upstream, UpstreamError
from domain.providers.media import MediaType, media_adapter_for
from domain.relay.plan import RelayConfig, platform_upstream
from domain.routing import repository as channels_repo
from domain.tasks import repository as repo
from domain.tasks import submissions
from schema.db import SessionFactory
from schema.tasks import Task, TaskOrphanJob, TaskSubmission
from schema.unit_of_work import unit_of_work

log = logging.getLogger("oxinf.tasks")

_CANCEL_STATES = {"canceled": "canceled", "finished": "finished", "unsupported": "uncancelable"}


async def dispose(
    sessions: SessionFactory,
    http: httpx.AsyncClient,
    task: Task,
    upstream: Upstream,
    media_type: MediaType,
    *,
    upstream_job_id: str,
    channel_id: uuid.UUID | None,
    submission: TaskSubmission | None,
    reason: submissions.OrphanReason,
) -> str | None:
    """Records the orphan (once) and cancels it: the state it ends in, None when the job was
    already known."""
    async with unit_of_work(sessions) as session:
        orphan = await submissions.record_orphan(
            session, task, upstream_job_id=upstream_job_id, provider=upstream.provider,
            channel_id=channel_id, submission=submission, reason=reason,
        )  # fmt: skip
    if orphan is None:
        return None
    log.warning(
        "orphan upstream job found",
        extra={"task": str(task.id), "job": upstream_job_id, "reason": reason},
    )
    return await cancel(sessions, http, upstream, media_type, orphan)


async def cancel(
    sessions: SessionFactory,
    http: httpx.AsyncClient,
    upstream: Upstream,
    media_type: MediaType,
    orphan: TaskOrphanJob,
) -> str:
    """Asks the provider to stop the job; a failure is kept for the next reconciliation."""
    error: str | None = None
    try:
        result = await media_adapter_for(orphan.provider).cancel(
            http, upstream, media_type, orphan.upstream_job_id
        )
        state = _CANCEL_STATES[result]
    except UpstreamError as err:
        state, error = "cancel_failed", err.message
    async with unit_of_work(sessions) as session:
        await submissions.orphan_resolved(session, orphan, state, error)
    log.info(
        "orphan upstream job resolved",
        extra={"task": str(orphan.task_id), "job": orphan.upstream_job_id, "state": state},
    )
    return state


@dataclass(frozen=True)
class Reconciled:
    found: int  # orphans newly found
    canceled: int  # orphans cancelled by this run (new or retried)
    still_open: int  # orphans whose cancellation failed and waits for another run


async def reconcile(
    sessions: SessionFactory,
    http: httpx.AsyncClient,
    box: SecretBox,
    cfg: RelayConfig,
    task_id: uuid.UUID,
) -> Reconciled:
    """Looks up every attempt that may hide a job and disposes of each job the task does
    not use; then retries cancellations that failed. Idempotent: known orphans are skipped."""
    async with unit_of_work(sessions) as session:
        task = await repo.get(session, task_id)
        if task is None:
            raise NotFound("no such task")
        doubtful = [
            s for s in await repo.submissions(session, task_id) if submissions.may_hide_a_job(s)
        ]
        waiting = await repo.orphans(session, task_id, states=submissions.OPEN_ORPHANS)
    kind = _media_type(task.type)
    found = canceled = still_open = 0
    for attempt in doubtful:
        upstream = await _upstream(sessions, task, attempt.channel_id, box, cfg)
        if upstream is None:
            continue
        jobs = await media_adapter_for(attempt.provider).find(
            http, upstream, kind, attempt.idempotency_key
        )
        for job_id in jobs or []:
            if job_id == task.upstream_job_id and attempt.channel_id == task.channel_id:
                continue
            reason: submissions.OrphanReason = (
                "duplicate" if task.upstream_job_id is not None else "task_finished"
            )
            state = await dispose(
                sessions, http, task, upstream, kind, upstream_job_id=job_id,
                channel_id=attempt.channel_id, submission=attempt, reason=reason,
            )  # fmt: skip
            if state is not None:
                found += 1
                canceled += state == "canceled"
                still_open += state == "cancel_failed"
    for orphan in waiting:
        upstream = await _upstream(sessions, task, orphan.channel_id, box, cfg)
        state = "cancel_failed" if upstream is None else await cancel(
            sessions, http, upstream, kind, orphan
        )  # fmt: skip
        canceled += state == "canceled"
        still_open += state == "cancel_failed"
    return Reconciled(found=found, canceled=canceled, still_open=still_open)


async def _upstream(
    sessions: SessionFactory,
    task: Task,
    channel_id: uuid.UUID | None,
    box: SecretBox,
    cfg: RelayConfig,
) -> Upstream | None:
    if channel_id is None:
        return None
    async with unit_of_work(sessions) as session:
        channel = await channels_repo.get_channel(session, channel_id)
    return None if channel is None else platform_upstream(channel, task.model, box, cfg)


def _media_type(value: str) -> MediaType:
    if value not in ("image", "video", "audio"):
        raise ValueError(f"not a media type: {value!r}")
    return value  # type: ignore[return-value]
