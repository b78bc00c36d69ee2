"""The `domain.ports.WorkflowStarter` of every process: Temporal's client and our workflows.

Built once per process (the API's resources, the worker's activity deps) over a client
getter, so the API can start while Temporal is still away and connect on first use. Each
start is bounded by `timeout_s` when given (the API answers 503 rather than hang).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from domain.tasks import service as tasks
from workflows.callbacks import (
    CallbackDeliveryWorkflow,
    CallbackJob,
    callback_workflow_id,
    webhook_id_for,
)
from workflows.media import MediaTaskWorkflow, TaskRef
from workflows.payments import (
    AutoRechargeWorkflow,
    RechargeInput,
    StripeEventInput,
    StripeEventWorkflow,
    recharge_workflow_id,
    stripe_event_workflow_id,
)

ClientGetter = Callable[[], Awaitable[Client]]


class TemporalWorkflowStarter:
    def __init__(
        self,
        client: ClientGetter,
        *,
        task_queue: str | Callable[[], str],
        timeout_s: float | None = None,
    ) -> None:
        """`task_queue` may be a getter, read at each start (the API's resources pass one
        over their settings, which tests swap in place)."""
        self._client = client
        self._task_queue = task_queue
        self.timeout_s = timeout_s

    @property
    def task_queue(self) -> str:
        queue = self._task_queue
        return queue if isinstance(queue, str) else queue()

    @classmethod
    def over(cls, client: Client, *, task_queue: str) -> TemporalWorkflowStarter:
        """Over a client already connected (a worker's, an activity's)."""

        async def connected() -> Client:
            return client

        return cls(connected, task_queue=task_queue)

    async def _start(self, run: Any, arg: Any, **options: Any) -> bool:
        async with asyncio.timeout(self.timeout_s):
            client = await self._client()
            try:
                await client.start_workflow(run, arg, task_queue=self.task_queue, **options)
            except WorkflowAlreadyStartedError:
                return False
        return True

    async def start_task(
        self, task_id: uuid.UUID, *, org_id: uuid.UUID, deadline_s: int, callback_url: str | None
    ) -> bool:
        """`deadline_s` counts from the workflow's own start. A task id is never run twice:
        one whose workflow ever existed (a stuck-task sweep racing the API) is left alone."""
        ref = TaskRef(
            task_id=str(task_id),
            deadline_s=deadline_s,
            callback_url=callback_url,
            org_id=str(org_id),
        )
        return await self._start(
            MediaTaskWorkflow.run,
            ref,
            id=tasks.workflow_id(task_id),
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )

    async def start_recharge(self, org_id: uuid.UUID) -> bool:
        """Fails while one runs for the org, which stays open until the org is re-armed: any
        number of replicas racing on one threshold crossing start one recharge."""
        return await self._start(
            AutoRechargeWorkflow.run,
            RechargeInput(org_id=str(org_id)),
            id=recharge_workflow_id(str(org_id)),
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        )

    async def start_stripe_event(self, event_id: str) -> bool:
        """A redelivery while the event's workflow runs attaches to it; after it completed
        the work is done, unless it failed, when it may run again."""
        return await self._start(
            StripeEventWorkflow.run,
            StripeEventInput(event_id=event_id),
            id=stripe_event_workflow_id(event_id),
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )

    async def start_callback(
        self,
        *,
        task_id: uuid.UUID,
        org_id: uuid.UUID,
        event: str,
        url: str,
        payload: dict[str, Any],
    ) -> bool:
        """Duplicates are rejected for as long as Temporal remembers the id (the namespace's
        retention); after that the task's own state is what stops a second start. The
        `webhook-id` derives from (task, event), so a re-start sends the id the receiver may
        already have seen."""
        job = CallbackJob(
            task_id=task_id,
            org_id=org_id,
            event=event,
            url=url,
            payload=payload,
            webhook_id=webhook_id_for(task_id, event),
        )
        return await self._start(
            CallbackDeliveryWorkflow.run,
            job,
            id=callback_workflow_id(task_id, event),
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        )
