"""What the domain asks of the world above it, as protocols it can be handed.

`domain` imports neither the workflows nor Temporal's client (DESIGN.md §2), yet its rules
decide when a workflow must start: a task once its reservation commits, a recharge when a
settle crosses the threshold, a Stripe event once it is recorded. So it is given a
`WorkflowStarter`, built once per process (`config.workflow_starter`, over the process's
Temporal client) and passed to what needs it. Tests hand in the same implementation over a
test server.

Every start derives the workflow id from a business key and is idempotent: starting one that
is already running or done returns False (what "done" means for each is in the
implementation's docstrings), so a retried or racing starter starts nothing twice.
"""

from __future__ import annotations

import uuid
from typing import Any, Protocol


class WorkflowStarter(Protocol):
    async def start_task(
        self, task_id: uuid.UUID, *, org_id: uuid.UUID, deadline_s: int, callback_url: str | None
    ) -> bool:
        """The media task's workflow (`task-{id}`); False if that id was ever started."""
        ...

    async def start_recharge(self, org_id: uuid.UUID) -> bool:
        """The org's auto-recharge (`auto-recharge-{org}`); False while one is running."""
        ...

    async def start_stripe_event(self, event_id: str) -> bool:
        """The event's workflow (`stripe-event-{id}`); a running one is joined (True), a
        finished one is not run again (False) unless it failed."""
        ...

    async def start_callback(
        self,
        *,
        task_id: uuid.UUID,
        org_id: uuid.UUID,
        event: str,
        url: str,
        payload: dict[str, Any],
    ) -> bool:
        """One callback delivery (`callback-{task}-{event}`); False if ever started."""
        ...
