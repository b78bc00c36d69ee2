"""Activities of the media task workflow: thin wrappers around `domain.tasks`.

Each is idempotent: submit never resubmits a task that has an upstream job (and resolves an
attempt a dead worker left unanswered before trying anything new), poll only reads, storing
results writes each to its own deterministic key and skips those already stored, finalize
writes a terminal state once (a replay returns the first result), and reconcile skips
orphans it already knows.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.deps import ActivityDeps
from config.runtime import build_tenant_http_client, relay_config, result_store
from config.workflow_starter import TemporalWorkflowStarter
from domain.crypto import SecretBox
from domain.providers import UpstreamError
from domain.providers.media import MediaOutcome
from domain.results import copy
from domain.results.sources import CopyError
from domain.tasks import dispatch, orphans, repository, service
from domain.tasks.views import task_view
from schema.unit_of_work import unit_of_work
from workflows.media import (
    COPY_REFUSED,
    FINALIZE,
    POLL,
    RECONCILE,
    RECOVER_STUCK,
    STORE,
    SUBMIT,
    SUBMIT_HEARTBEAT,
    UPSTREAM_REJECTED,
    FinalizeInput,
    PollResult,
    ReconcileResult,
    StoreInput,
    StoreResult,
    SubmitResult,
    TaskActivityDefs,
    TaskDone,
    TaskRef,
)

# Several beats per heartbeat timeout, so one slow beat on a busy machine is not a death.
BEAT_EVERY_S = SUBMIT_HEARTBEAT.total_seconds() / 5


@contextlib.asynccontextmanager
async def heartbeating() -> AsyncIterator[None]:
    """Heartbeats while the body runs (an upstream call that may take minutes), so Temporal
    tells a slow call from a dead worker."""

    async def beat() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(BEAT_EVERY_S)

    beats = asyncio.create_task(beat())
    try:
        yield
    finally:
        beats.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beats


def _outcome_dict(outcome: MediaOutcome | None) -> dict[str, object] | None:
    return None if outcome is None else outcome.to_dict()


class TaskActivities(TaskActivityDefs):
    def __init__(self, deps: ActivityDeps) -> None:
        self._deps = deps
        self._box = SecretBox(deps.settings.encryption_key_list)
        self._cfg = relay_config(deps.settings)
        self._results = result_store(deps.settings)
        self._rng = random.Random()  # noqa: S311  (load spreading)

    @activity.defn(name=SUBMIT)
    async def submit(self, ref: TaskRef) -> SubmitResult:
        try:
            async with heartbeating():
                done = await dispatch.submit(
                    self._deps.sessions, self._deps.http, self._box, self._cfg,
                    uuid.UUID(ref.task_id), self._rng,
                )  # fmt: skip
        except dispatch.AllChannelsFailed as exc:
            raise ApplicationError(f"every channel failed: {exc}") from None
        return SubmitResult(
            status=done.status,
            outcome=_outcome_dict(done.outcome),
            error=done.error,
            reconcile_after_s=done.reconcile_after_s,
        )

    @activity.defn(name=STORE)
    async def store_results(self, job: StoreInput) -> StoreResult:
        """Copies the results into the result store; a copy that cannot work is a
        non-retryable `ResultCopyRefused` naming the result it stopped at."""
        outcome = MediaOutcome.from_dict(job.outcome)
        public = build_tenant_http_client(self._deps.settings.tenant_egress)
        try:
            async with heartbeating():
                stored = await copy.copy_results(
                    self._deps.sessions, self._results.store,
                    copy.Clients(channel=self._deps.http, public=public),
                    self._box, self._cfg, self._results.limits, uuid.UUID(job.task_id), outcome,
                )  # fmt: skip
        except CopyError as err:
            activity.logger.warning(
                "task result copy failed",
                extra={"task": job.task_id, "index": err.index, "error": err.message},
            )
            raise ApplicationError(
                err.message,
                {"index": err.index},
                type=COPY_REFUSED if err.permanent else "ResultCopyFailed",
                non_retryable=err.permanent,
            ) from None
        finally:
            await public.aclose()
        return StoreResult(stored=[s.to_dict() for s in stored])

    @activity.defn(name=RECONCILE)
    async def reconcile(self, ref: TaskRef) -> ReconcileResult:
        """Finds and cancels upstream jobs the task does not use; retried (by raising) while
        a lookup fails or a cancellation is still pending."""
        try:
            done = await orphans.reconcile(
                self._deps.sessions, self._deps.http, self._box, self._cfg,
                uuid.UUID(ref.task_id),
            )  # fmt: skip
        except UpstreamError as err:
            raise ApplicationError(f"upstream lookup failed: {err.message}") from None
        if done.still_open:
            raise ApplicationError(f"{done.still_open} orphan job(s) not cancelled yet")
        return ReconcileResult(found=done.found, canceled=done.canceled, still_open=0)

    @activity.defn(name=POLL)
    async def poll(self, ref: TaskRef) -> PollResult:
        try:
            outcome = await dispatch.poll(
                self._deps.sessions, self._deps.http, self._box, self._cfg, uuid.UUID(ref.task_id)
            )
        except UpstreamError as err:
            if err.retryable:
                raise ApplicationError(f"upstream poll failed: {err.message}") from None
            raise ApplicationError(
                err.message, type=UPSTREAM_REJECTED, non_retryable=True
            ) from None
        error = None
        if outcome.status == "failed":
            error = {
                "code": outcome.error_code or "upstream_error",
                "message": outcome.error_message or "the provider could not complete the task",
            }
        return PollResult(status=outcome.status, outcome=_outcome_dict(outcome), error=error)

    @activity.defn(name=RECOVER_STUCK)
    async def recover_stuck(self, older_than_s: int) -> int:
        """Start the workflow of tasks stuck in `pending` (the API died between committing
        the task and starting its workflow). A workflow that exists is left alone, so this
        never runs a task twice; the task then settles or refunds like any other."""
        cutoff = datetime.now(UTC) - timedelta(seconds=older_than_s)
        async with unit_of_work(self._deps.sessions) as session:
            stuck = await repository.stale_pending(session, cutoff, limit=100)
        starter = TemporalWorkflowStarter.over(
            activity.client(), task_queue=self._deps.settings.task_queue
        )
        started = 0
        for task in stuck:
            # What is left of the deadline, counted from the workflow's own start.
            left = (task.deadline_at - datetime.now(UTC)) if task.deadline_at else timedelta(0)
            started += await starter.start_task(
                task.id, org_id=task.org_id, callback_url=task.callback_url,
                deadline_s=max(1, int(left.total_seconds())),
            )  # fmt: skip
        return started

    @activity.defn(name=FINALIZE)
    async def finalize(self, final: FinalizeInput) -> TaskDone:
        task_id = uuid.UUID(final.task_id)
        outcome = MediaOutcome.from_dict(final.outcome) if final.outcome else None
        async with unit_of_work(self._deps.sessions) as session:
            result = await service.finalize(
                session, task_id, final.status,  # type: ignore[arg-type]
                outcome=outcome, error=final.error, stored=final.stored,
                copy_error=final.copy_error,
            )  # fmt: skip
            task = await repository.get(session, task_id)
        assert task is not None
        return TaskDone(
            status=result.status,
            charged_micros=result.charged_micros,
            refunded_micros=result.refunded_micros,
            # Callbacks have no request: absolute download URLs need OXINF_PUBLIC_BASE_URL.
            payload=task_view(
                task, base_url=self._deps.settings.public_base_url, signer=self._results.signer
            ),
        )
