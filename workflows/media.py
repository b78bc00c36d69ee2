"""One workflow per media task (`task-{id}`): submit, poll, settle or refund, then callback.

Deterministic code only: every side effect is an activity called by method reference on
`TaskActivityDefs` (so mypy checks each argument and result), inputs and results are plain
pydantic models. Polling is a loop of short activities separated by
growing workflow timers, bounded by the task's deadline; a run that polls for long hands
over to a fresh one (continue-as-new) so history never grows without bound.

Submit heartbeats, so a worker killed inside the upstream call is noticed within
`SUBMIT_HEARTBEAT` and the retry (on any worker) resolves the attempt it left behind rather
than submitting anew. When the submit says an earlier attempt may have left a job upstream,
a last step looks for it once the task has settled and cancels it (`tasks.reconcile`).

Before a success is settled, its results are copied into the result store
(`tasks.store_results`), retried with backoff for at most `STORE_WINDOW`. A copy that still
fails does not fail the task: the provider did the work and the customer got it, so the task
is settled as succeeded with the provider's URLs, as before the store existed, and the failure
is recorded for operators. Never charged for nothing, never refunded for something delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import datetime, timedelta
from typing import Any, Protocol

from pydantic import BaseModel
from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

from workflows.callbacks import CallbackJob, start_callback_child, webhook_id_for

SUBMIT = "tasks.submit"
POLL = "tasks.poll"
FINALIZE = "tasks.finalize"
RECONCILE = "tasks.reconcile"
RECOVER_STUCK = "tasks.recover_stuck"
STORE = "tasks.store_results"
UPSTREAM_REJECTED = "UpstreamRejected"
MAX_POLL_PAUSE = timedelta(seconds=30)
HISTORY_LIMIT = 2_000
# Bounds the whole submit (several channels, each up to the upstream timeout); a dead worker
# is noticed by the heartbeat instead.
SUBMIT_TIMEOUT = timedelta(minutes=10)
SUBMIT_HEARTBEAT = timedelta(seconds=10)
# A submit that failed outright may have left attempts unanswered: look after this long.
RECONCILE_AFTER_FAILED_SUBMIT = timedelta(minutes=2)
RECONCILE_PATCH = "reconcile-upstream-jobs"
STORE_PATCH = "store-task-results"
# A copy that cannot work (too large, refused by the egress policy, gone upstream).
COPY_REFUSED = "ResultCopyRefused"
# Well inside the hold's margin past the task's deadline, so the settle always finds its hold.
STORE_WINDOW = timedelta(minutes=20)
STORE_HEARTBEAT = timedelta(seconds=30)


class TaskRef(BaseModel):
    task_id: str
    deadline_s: int
    deadline_at: datetime | None = None  # set when a long poll continues as a new run
    org_id: str
    callback_url: str | None = None


class SubmitResult(BaseModel):
    status: str
    outcome: dict[str, Any] | None = None
    error: dict[str, str] | None = None
    # Set when an earlier attempt may have left a job upstream: look for it after this long.
    reconcile_after_s: int | None = None


class ReconcileResult(BaseModel):
    found: int
    canceled: int
    still_open: int


class PollResult(BaseModel):
    status: str
    outcome: dict[str, Any] | None = None
    error: dict[str, str] | None = None


class FinalizeInput(BaseModel):
    task_id: str
    status: str
    outcome: dict[str, Any] | None = None
    error: dict[str, str] | None = None
    # The results copied into the result store, by index ({index, content_type, bytes}).
    stored: list[dict[str, Any]] | None = None
    # Set when the copy gave up: {"index": int | None, "message": str}, recorded for ops.
    copy_error: dict[str, Any] | None = None


class StoreInput(BaseModel):
    task_id: str
    outcome: dict[str, Any]


class StoreResult(BaseModel):
    stored: list[dict[str, Any]]


class TaskDone(BaseModel):
    status: str
    charged_micros: int
    refunded_micros: int
    payload: dict[str, Any] | None = None


class TaskActivityDefs(Protocol):
    """The media task's activities as the workflows see them: names and types, no bodies.

    `activities.tasks.TaskActivities` implements them; it imports `domain` and its database
    and HTTP clients, which workflow code must not import, so workflows call these stubs
    and the worker registers the implementation under the same names (which are what
    histories record, so they never change).
    """

    @activity.defn(name=SUBMIT)
    async def submit(self, ref: TaskRef) -> SubmitResult: ...

    @activity.defn(name=POLL)
    async def poll(self, ref: TaskRef) -> PollResult: ...

    @activity.defn(name=FINALIZE)
    async def finalize(self, final: FinalizeInput) -> TaskDone: ...

    @activity.defn(name=RECONCILE)
    async def reconcile(self, ref: TaskRef) -> ReconcileResult: ...

    @activity.defn(name=RECOVER_STUCK)
    async def recover_stuck(self, older_than_s: int) -> int: ...

    @activity.defn(name=STORE)
    async def store_results(self, request: StoreInput) -> StoreResult: ...


def _failed(ref: TaskRef, code: str, message: str) -> FinalizeInput:
    return FinalizeInput(
        task_id=ref.task_id, status="failed", error={"code": code, "message": message}
    )


@workflow.defn(name="MediaTask")
class MediaTaskWorkflow:
    def __init__(self) -> None:
        self._cancel = False
        self._done: TaskDone | None = None
        self._reconcile_at: datetime | None = None

    @workflow.run
    async def run(self, ref: TaskRef) -> TaskDone:
        started = workflow.now()
        final = await self._work(ref, started)
        if final.status == "succeeded" and final.outcome and workflow.patched(STORE_PATCH):
            final = await self._store(final)
        done = await workflow.execute_activity_method(
            TaskActivityDefs.finalize,
            final,
            start_to_close_timeout=timedelta(seconds=30),
            # Money must settle: keep retrying (with backoff) until the database answers.
            retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=1)),
        )
        self._done = done
        if ref.callback_url and done.payload is not None:
            await self._callback(ref, done)
        if self._reconcile_at is not None and workflow.patched(RECONCILE_PATCH):
            await self._reconcile(ref, self._reconcile_at)
        return done

    async def _work(self, ref: TaskRef, started: datetime) -> FinalizeInput:
        def fail(code: str, message: str) -> FinalizeInput:
            return _failed(ref, code, message)

        try:
            submitted = await workflow.execute_activity_method(
                TaskActivityDefs.submit,
                ref,
                start_to_close_timeout=SUBMIT_TIMEOUT,
                heartbeat_timeout=SUBMIT_HEARTBEAT,
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(seconds=2),
                    maximum_attempts=4,
                    non_retryable_error_types=[UPSTREAM_REJECTED],
                ),
            )
        except ActivityError:
            self._reconcile_at = workflow.now() + RECONCILE_AFTER_FAILED_SUBMIT
            return fail("service_unavailable", "no upstream channel accepted the task")
        if submitted.reconcile_after_s is not None:
            self._reconcile_at = workflow.now() + timedelta(seconds=submitted.reconcile_after_s)
        if self._cancel:
            return FinalizeInput(task_id=ref.task_id, status="canceled")
        if submitted.status == "failed":
            error = submitted.error or {}
            return fail(error.get("code", "upstream_error"), error.get("message", "failed"))
        if submitted.status == "succeeded":
            return FinalizeInput(task_id=ref.task_id, status="succeeded", outcome=submitted.outcome)

        return await self._poll_until_done(ref, started)

    async def _poll_until_done(self, ref: TaskRef, started: datetime) -> FinalizeInput:
        """Poll with growing pauses; the pauses are workflow timers, so a cancel wakes them
        and tests skip them, and history is handed to a new run before it grows large."""
        deadline = ref.deadline_at or started + timedelta(seconds=ref.deadline_s)
        pause = timedelta(seconds=1)
        while True:
            if self._cancel:
                return FinalizeInput(task_id=ref.task_id, status="canceled")
            if workflow.now() >= deadline:
                return _failed(
                    ref, "deadline_exceeded", "the task did not finish before its deadline"
                )
            try:
                polled = await workflow.execute_activity_method(
                    TaskActivityDefs.poll,
                    ref,
                    # Short, so a poll lost with a crashed worker is retried soon.
                    start_to_close_timeout=timedelta(seconds=20),
                    retry_policy=RetryPolicy(
                        initial_interval=timedelta(seconds=1),
                        maximum_interval=timedelta(seconds=10),
                        maximum_attempts=3,
                        non_retryable_error_types=[UPSTREAM_REJECTED],
                    ),
                )
            except ActivityError as err:
                cause = err.cause
                if isinstance(cause, ApplicationError) and cause.type == UPSTREAM_REJECTED:
                    return _failed(ref, "upstream_error", cause.message)
                polled = PollResult(status="processing")  # transient: keep polling
            if polled.status == "succeeded":
                return FinalizeInput(
                    task_id=ref.task_id, status="succeeded", outcome=polled.outcome
                )
            if polled.status == "failed":
                error = polled.error or {}
                return _failed(
                    ref, error.get("code", "upstream_error"), error.get("message", "failed")
                )
            wait = min(pause, deadline - workflow.now())
            if wait > timedelta(0):
                with contextlib.suppress(asyncio.TimeoutError):
                    await workflow.wait_condition(lambda: self._cancel, timeout=wait)
            pause = min(pause * 3 // 2, MAX_POLL_PAUSE)
            if workflow.info().get_current_history_length() > HISTORY_LIMIT and not self._cancel:
                workflow.continue_as_new(ref.model_copy(update={"deadline_at": deadline}))

    async def _store(self, final: FinalizeInput) -> FinalizeInput:
        """Copies the results into the result store; gives up (keeping the provider's URLs)
        once a copy is refused or `STORE_WINDOW` has passed."""
        assert final.outcome is not None
        try:
            stored = await workflow.execute_activity_method(
                TaskActivityDefs.store_results,
                StoreInput(task_id=final.task_id, outcome=final.outcome),
                start_to_close_timeout=STORE_WINDOW,
                schedule_to_close_timeout=STORE_WINDOW,
                heartbeat_timeout=STORE_HEARTBEAT,
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(seconds=2),
                    maximum_interval=timedelta(minutes=2),
                    non_retryable_error_types=[COPY_REFUSED],
                ),
            )
        except ActivityError as err:
            cause = err.cause
            index: int | None = None
            if isinstance(cause, ApplicationError):
                message = cause.message
                details = cause.details[0] if cause.details else None
                if isinstance(details, dict) and isinstance(details.get("index"), int):
                    index = details["index"]
            else:
                message = f"the copy did not finish within {STORE_WINDOW}"
            workflow.logger.warning("task results not stored: %s", message)
            return final.model_copy(update={"copy_error": {"index": index, "message": message}})
        return final.model_copy(update={"stored": stored.stored})

    async def _reconcile(self, ref: TaskRef, at: datetime) -> None:
        """Best effort once the money is settled: a failure is logged, never the task's."""
        wait = at - workflow.now()
        if wait > timedelta(0):
            await workflow.sleep(wait)
        try:
            found = await workflow.execute_activity_method(
                TaskActivityDefs.reconcile,
                ref,
                start_to_close_timeout=timedelta(minutes=2),
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(seconds=5),
                    maximum_interval=timedelta(minutes=1),
                    maximum_attempts=5,
                ),
            )
        except ActivityError as err:
            workflow.logger.warning("upstream reconciliation gave up: %s", err.cause)
            return
        if found.found:
            workflow.logger.warning(
                "orphan upstream jobs: %d found, %d cancelled", found.found, found.canceled
            )

    async def _callback(self, ref: TaskRef, done: TaskDone) -> None:
        task_id, event = uuid.UUID(ref.task_id), f"task.{done.status}"
        await start_callback_child(
            CallbackJob(
                task_id=task_id,
                org_id=uuid.UUID(ref.org_id),
                event=event,
                url=ref.callback_url or "",
                payload={"type": event, "data": done.payload},
                webhook_id=webhook_id_for(task_id, event),
            )
        )

    @workflow.update
    async def cancel(self) -> TaskDone:
        """Cancel and wait until the refund is booked; a finished task is returned as is."""
        self._cancel = True
        await workflow.wait_condition(lambda: self._done is not None)
        assert self._done is not None
        return self._done

    @workflow.query
    def finished(self) -> bool:
        return self._done is not None
