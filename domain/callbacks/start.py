"""Starting a delivery from outside workflow code (API handlers, activities, scripts).

Call it only after the transaction that finished the task has committed. The workflow id is
the business key `callback-{task}-{event}` and duplicates are rejected, so a starter that is
retried after a crash, or two racing starters, still deliver the event once. (Temporal
remembers a closed id for the namespace's retention period; after that the task's own state
is what stops a second start.)
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from workflows.callbacks import (
    CallbackDeliveryWorkflow,
    CallbackJob,
    callback_workflow_id,
    webhook_id_for,
)


def build_payload(event: str, data: dict[str, Any], occurred_at: datetime) -> dict[str, Any]:
    """The body shape Standard Webhooks recommends: `{type, timestamp, data}`.

    `occurred_at` is when the event happened (not when it is sent), so every retry carries
    the same body.
    """
    return {"type": event, "timestamp": occurred_at.isoformat(), "data": data}


def callback_job(
    *, task_id: uuid.UUID, org_id: uuid.UUID, event: str, url: str, payload: dict[str, Any]
) -> CallbackJob:
    """A job whose `webhook-id` is derived from (task, event), stable across re-starts."""
    return CallbackJob(
        task_id=task_id,
        org_id=org_id,
        event=event,
        url=url,
        payload=payload,
        webhook_id=webhook_id_for(task_id, event),
    )


async def start_callback(client: Client, job: CallbackJob, task_queue: str) -> bool:
    """Start the delivery workflow; False when it was already started (nothing is sent twice)."""
    try:
        await client.start_workflow(
            CallbackDeliveryWorkflow.run,
            job,
            id=callback_workflow_id(job.task_id, job.event),
            task_queue=task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        )
    except WorkflowAlreadyStartedError:
        return False
    return True
