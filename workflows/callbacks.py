"""Delivers one task callback on a schedule of days (DESIGN.md §6 "Callbacks").

One workflow per (task, event), so a receiver that is down for a day still gets its event,
and the Temporal UI shows every attempt. Each activity call is exactly one HTTP attempt with
no activity-level retries: the workflow owns the schedule, so the spacing between attempts is
the documented one rather than Temporal's exponential default stacked on top of it.

The models here are the contract shared by the workflow, the activity and whoever starts a
delivery; they live in this module because workflow code may not import `domain`.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field
from temporalio import activity, workflow
from temporalio.common import RetryPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ActivityError, WorkflowAlreadyStartedError
from temporalio.workflow import ChildWorkflowCancellationType, ParentClosePolicy

DELIVER = "callbacks.deliver"
WORKFLOW_NAME = "CallbackDelivery"

# Delay before each attempt: 11 attempts over ~71.6 h (≈ 3 days) before giving up. Early
# retries catch blips and deploys; the long tail covers a receiver that is down overnight.
RETRY_SCHEDULE: tuple[timedelta, ...] = (
    timedelta(0),
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
    timedelta(hours=10),
    timedelta(hours=14),
    timedelta(hours=20),
)
JITTER = 0.10  # ± fraction of each delay, so callbacks that failed together do not retry together
# Generous next to the activity's own bounds (DNS + connect + read, seconds each): this only
# fires when a worker dies mid-attempt, and then the workflow moves on to the next attempt.
ATTEMPT_TIMEOUT = timedelta(minutes=2)

_WEBHOOK_ID_NAMESPACE = uuid.UUID("5d0f3e55-8a8e-4b8e-9a57-0c2a6f7d4b21")

Decision = Literal["delivered", "retry", "stop"]
Outcome = Literal["delivered", "http_error", "refused", "timeout", "connect_error", "redirect"]


class CallbackJob(BaseModel):
    """Everything one delivery needs, fixed when it starts so every attempt sends the same."""

    task_id: uuid.UUID
    org_id: uuid.UUID
    event: str = Field(min_length=1, max_length=40, examples=["task.succeeded"])
    url: str = Field(min_length=1, max_length=2000)
    payload: dict[str, Any]
    webhook_id: str = Field(min_length=1, max_length=80)


class DeliveryRequest(BaseModel):
    job: CallbackJob
    attempt: int = Field(ge=1)


class DeliveryResult(BaseModel):
    decision: Decision
    outcome: Outcome
    http_status: int | None = None
    error: str | None = None


class CallbackSummary(BaseModel):
    delivered: bool
    attempts: int
    last_status: int | None = None
    last_outcome: str | None = None


class CallbackActivityDefs(Protocol):
    """Implemented by `activities.callbacks.CallbackActivities` (see `workflows.media`)."""

    @activity.defn(name=DELIVER)
    async def deliver(self, request: DeliveryRequest) -> DeliveryResult: ...


def callback_workflow_id(task_id: uuid.UUID, event: str) -> str:
    """The business key: at most one delivery workflow per task event, ever."""
    return f"callback-{task_id}-{event}"


def webhook_id_for(task_id: uuid.UUID, event: str) -> str:
    """A stable `webhook-id`: a retried starter sends the id the receiver may already have seen.

    Pure (uuid5), so workflow code can call it too.
    """
    return f"msg_{uuid.uuid5(_WEBHOOK_ID_NAMESPACE, f'{task_id}:{event}').hex}"


def jittered(delay: timedelta, unit: float) -> timedelta:
    """`unit` in [0, 1) maps to a factor in [1 - JITTER, 1 + JITTER)."""
    return delay * (1.0 + JITTER * (2.0 * unit - 1.0))


@workflow.defn(name=WORKFLOW_NAME)
class CallbackDeliveryWorkflow:
    @workflow.run
    async def run(self, job: CallbackJob) -> CallbackSummary:
        summary = CallbackSummary(delivered=False, attempts=0)
        for attempt, delay in enumerate(RETRY_SCHEDULE, start=1):
            if delay:
                await workflow.sleep(jittered(delay, workflow.random().random()))
            try:
                result = await workflow.execute_activity_method(
                    CallbackActivityDefs.deliver,
                    DeliveryRequest(job=job, attempt=attempt),
                    start_to_close_timeout=ATTEMPT_TIMEOUT,
                    retry_policy=RetryPolicy(maximum_attempts=1),
                )
            except ActivityError as exc:
                # A crashed worker or an unreachable database is one failed attempt, not the
                # end of the delivery: the schedule continues.
                workflow.logger.warning("callback attempt failed to run: %s", exc.cause or exc)
                summary = CallbackSummary(
                    delivered=False, attempts=attempt, last_status=None, last_outcome="error"
                )
                continue
            summary = CallbackSummary(
                delivered=result.decision == "delivered",
                attempts=attempt,
                last_status=result.http_status,
                last_outcome=result.outcome,
            )
            if result.decision != "retry":
                break
        return summary


async def start_callback_child(job: CallbackJob) -> None:
    """Start the delivery from a task workflow, outliving it (parent-close ABANDON).

    Cancelling the task must still report `task.canceled`, so the child is never cancelled
    with its parent either. A duplicate start (the parent replayed through continue-as-new,
    say) finds the id taken and does nothing: the event is delivered once.
    """
    try:
        await workflow.start_child_workflow(
            CallbackDeliveryWorkflow.run,
            job,
            id=callback_workflow_id(job.task_id, job.event),
            parent_close_policy=ParentClosePolicy.ABANDON,
            cancellation_type=ChildWorkflowCancellationType.ABANDON,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )
    except WorkflowAlreadyStartedError:
        workflow.logger.info("callback already started for %s %s", job.task_id, job.event)
