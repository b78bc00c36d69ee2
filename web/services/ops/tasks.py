"""Tasks and schedules: media tasks that failed or look stuck, and the money schedules'
last and next runs as Temporal describes them.

Temporal being away must not blank the page: the task half comes from PostgreSQL, and each
schedule that cannot be described says why instead.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import ScheduleActionExecutionStartWorkflow

from domain.ops import repository as ops_repo
from domain.ops.service import TemporalGetter, temporal_link
from schema.tasks import Task
from workflows import billing_cycles, holds

log = logging.getLogger("oxinf.ops")

WINDOW = timedelta(days=7)  # how far back failed and stuck tasks are listed
STUCK_AFTER = timedelta(minutes=30)  # unfinished for this long: worth a look
LIMIT = 100
DESCRIBE_TIMEOUT_S = 5.0
SCHEDULES = (
    (billing_cycles.ALLOCATION_SCHEDULE_ID, "Monthly credit allocations"),
    (billing_cycles.RETENTION_SCHEDULE_ID, "Nightly retention"),
    (holds.SCHEDULE_ID, "Hold sweeper"),
)


@dataclass(frozen=True)
class Run:
    scheduled_at: datetime
    started_at: datetime
    workflow_id: str | None
    url: str | None


@dataclass(frozen=True)
class ScheduleState:
    schedule_id: str
    label: str
    url: str  # the schedule in the Temporal UI
    error: str | None = None  # why it could not be described
    paused: bool = False
    note: str = ""
    last: Run | None = None
    next_runs: tuple[datetime, ...] = ()
    running: int = 0


@dataclass(frozen=True)
class TaskRow:
    task: Task
    stuck: bool

    @property
    def error_text(self) -> str:
        error = self.task.error or {}
        return str(error.get("message") or error.get("code") or "")


async def problem_tasks(session: AsyncSession, now: datetime | None = None) -> list[TaskRow]:
    now = now or datetime.now(UTC)
    stuck_before = now - STUCK_AFTER
    found = await ops_repo.problem_tasks(
        session, since=now - WINDOW, stuck_before=stuck_before, limit=LIMIT
    )
    return [TaskRow(t, t.status in ("pending", "processing")) for t in found]


async def _describe(
    get_client: TemporalGetter, schedule_id: str, label: str, ui_base: str, namespace: str
) -> ScheduleState:
    url = f"{ui_base.rstrip('/')}/namespaces/{quote(namespace)}/schedules/{quote(schedule_id)}"
    try:
        client = await asyncio.wait_for(get_client(), DESCRIBE_TIMEOUT_S)
        handle = client.get_schedule_handle(schedule_id)
        described = await asyncio.wait_for(handle.describe(), DESCRIBE_TIMEOUT_S)
    except Exception as exc:  # Temporal down, schedule not created yet, timeout
        log.info("schedule unavailable", extra={"schedule_id": schedule_id})
        return ScheduleState(schedule_id, label, url, error=f"{type(exc).__name__}: {exc}"[:300])
    info = described.info
    last = None
    if info.recent_actions:
        action = info.recent_actions[-1]
        started = action.action
        wid = (
            started.workflow_id
            if isinstance(started, ScheduleActionExecutionStartWorkflow)
            else None
        )
        last = Run(
            action.scheduled_at,
            action.started_at,
            wid,
            temporal_link(ui_base, namespace, wid) if wid else None,
        )
    state = described.schedule.state
    return ScheduleState(
        schedule_id, label, url,
        paused=state.paused, note=state.note or "", last=last,
        next_runs=tuple(info.next_action_times[:3]), running=len(info.running_actions),
    )  # fmt: skip


async def schedules(
    get_client: TemporalGetter, ui_base: str, namespace: str
) -> list[ScheduleState]:
    return list(
        await asyncio.gather(
            *(_describe(get_client, sid, label, ui_base, namespace) for sid, label in SCHEDULES)
        )
    )
