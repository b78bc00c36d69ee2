"""What a task sent upstream, written down before it was sent.

A worker can die, or a read time out, after the provider created a job and before its answer
arrived. So every attempt is a `task_submissions` row committed *before* the request leaves,
carrying the key the request will carry (`task-{task id}-{attempt}`). Whoever submits next
finds the attempt still `submitting` and resolves it (`domain.tasks.dispatch`) instead of
starting a second paid job.

The rules that keep one job per task live here, under the task's row lock: attempts are
numbered in order, at most one is `accepted` (the task's job), and a job that arrives once
the task already has one, or has ended, is recorded as an orphan for cancellation.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from domain.errors import NotFound
from domain.providers.media import MediaOutcome, media_adapter_for
from domain.tasks import repository as repo
from domain.tasks import service
from schema.tasks import Task, TaskOrphanJob, TaskSubmission

ERROR_LIMIT = 500
OPEN_ORPHANS = ("found", "cancel_failed")
OrphanReason = Literal["duplicate", "lost_race", "task_finished"]


def idempotency_key(task_id: uuid.UUID, attempt: int) -> str:
    return f"task-{task_id}-{attempt}"


async def begin_attempt(
    session: AsyncSession, task_id: uuid.UUID, *, channel_id: uuid.UUID | None, provider: str
) -> TaskSubmission | None:
    """The next attempt, `submitting`; None when there is nothing left to submit (another
    attempt already gave the task its job, or the task ended)."""
    task = await repo.get(session, task_id, lock=True)
    if task is None:
        raise NotFound("no such task")
    if task.status in repo.TERMINAL or await repo.accepted_submission(session, task_id):
        return None
    attempt = await repo.next_attempt(session, task_id)
    return await repo.insert_submission(
        session,
        {
            "task_id": task_id,
            "org_id": task.org_id,
            "attempt": attempt,
            "idempotency_key": idempotency_key(task_id, attempt),
            "channel_id": channel_id,
            "provider": provider,
        },
    )


async def count_send(session: AsyncSession, submission: TaskSubmission) -> None:
    """The same request goes out again under the same key (its first answer was lost)."""
    assert submission.id is not None
    await repo.count_send(session, submission.id)


async def close(
    session: AsyncSession,
    submission: TaskSubmission,
    state: Literal["refused", "abandoned"],
    error: str,
) -> None:
    """`refused`: the provider said no, so no job exists under the key. `abandoned`: no answer
    came and the task moves on; a job may still exist (reconciliation looks for it)."""
    assert submission.id is not None
    await repo.update_submission(
        session,
        submission.id,
        {"state": state, "error": error[:ERROR_LIMIT], "resolved_at": repo.NOW},
        from_states=("submitting",),
    )


@dataclass(frozen=True)
class Acceptance:
    accepted: bool  # this attempt's answer is the task's (now, or already)
    winner: TaskSubmission | None  # the attempt whose answer the task uses, if any
    task_status: str


async def accept(
    session: AsyncSession,
    task_id: uuid.UUID,
    submission: TaskSubmission,
    *,
    upstream_job_id: str | None,
    outcome: MediaOutcome | None,
    adopted: bool,
) -> Acceptance:
    """Gives the task this attempt's job (or synchronous result) unless it already has one or
    has ended; then the caller owns an orphan. Under the task's row lock, so two attempts
    racing each other (a retried activity next to one Temporal gave up on) agree."""
    assert submission.id is not None
    task = await repo.get(session, task_id, lock=True)
    if task is None:
        raise NotFound("no such task")
    winner = await repo.accepted_submission(session, task_id)
    if winner is not None:
        same = winner.id == submission.id and winner.upstream_job_id == upstream_job_id
        if not same:
            await _supersede(session, submission, upstream_job_id)
        return Acceptance(same, winner, task.status)
    if task.status in repo.TERMINAL:
        await _supersede(session, submission, upstream_job_id)
        return Acceptance(False, None, task.status)
    values: dict[str, Any] = {
        "state": "accepted",
        "upstream_job_id": upstream_job_id,
        "adopted": adopted,
        "resolved_at": repo.NOW,
        "error": None,
    }
    if upstream_job_id is None and outcome is not None:
        values["outcome"] = outcome.to_dict()
    await repo.update_submission(session, submission.id, values)
    await service.mark_processing(
        session, task_id, provider=submission.provider, channel_id=submission.channel_id,
        upstream_job_id=upstream_job_id,
    )  # fmt: skip
    accepted = await repo.get_submission(session, submission.id)
    return Acceptance(True, accepted, "processing")


async def _supersede(
    session: AsyncSession, submission: TaskSubmission, upstream_job_id: str | None
) -> None:
    assert submission.id is not None
    await repo.update_submission(
        session,
        submission.id,
        {"state": "superseded", "upstream_job_id": upstream_job_id, "resolved_at": repo.NOW},
        from_states=("submitting", "abandoned"),
    )


async def record_orphan(
    session: AsyncSession,
    task: Task,
    *,
    upstream_job_id: str,
    provider: str,
    channel_id: uuid.UUID | None,
    submission: TaskSubmission | None,
    reason: OrphanReason,
) -> TaskOrphanJob | None:
    """None when this job is already known as the task's orphan."""
    return await repo.insert_orphan(
        session,
        {
            "task_id": task.id,
            "org_id": task.org_id,
            "attempt": submission.attempt if submission else None,
            "idempotency_key": submission.idempotency_key if submission else None,
            "channel_id": channel_id,
            "provider": provider,
            "upstream_job_id": upstream_job_id[:200],
            "reason": reason,
        },
    )


async def orphan_resolved(
    session: AsyncSession, orphan: TaskOrphanJob, state: str, error: str | None
) -> None:
    assert orphan.id is not None
    await repo.update_orphan(
        session,
        orphan.id,
        {
            "state": state,
            "error": error[:ERROR_LIMIT] if error else None,
            "resolved_at": repo.NOW,
        },
    )


def may_hide_a_job(submission: TaskSubmission) -> bool:
    """An attempt worth looking up again: its answer never came, or its key was sent more
    than once (a provider that ignores keys made a job per send), and the provider can
    look jobs up by key."""
    try:
        finds = media_adapter_for(submission.provider).finds_by_reference
    except ValueError:
        return False
    unanswered = submission.state in ("submitting", "abandoned")
    return finds and (unanswered or submission.sends > 1)


async def reconcile_after(
    session: AsyncSession, task_id: uuid.UUID, *, answer_window: timedelta, now: datetime
) -> int | None:
    """Seconds until a look for stray jobs is worth it, or None when nothing can be astray.

    A request still in the provider's hands may create its job after we gave up on it, so
    the look waits until the last doubtful send is `answer_window` old (the upstream
    timeout: a provider slower than that to create a job is not expected).
    """
    doubtful = [s for s in await repo.submissions(session, task_id) if may_hide_a_job(s)]
    open_orphans = await repo.orphans(session, task_id, states=OPEN_ORPHANS)
    if not doubtful:
        return 0 if open_orphans else None
    latest = max(s.last_sent_at for s in doubtful if s.last_sent_at is not None)
    return max(0, int((latest + answer_window - now).total_seconds()) + 1)
