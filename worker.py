"""The Temporal worker: every workflow and activity 0xinf runs, registered explicitly.

Run with `oxinf worker`. Several replicas may poll the same task queue; activities are
idempotent so a retried or duplicated one never moves money twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.worker import Worker

from activities.billing_cycles import BillingCycleActivities
from activities.callbacks import CallbackActivities
from activities.deps import ActivityDeps
from activities.health import HealthActivities
from activities.ledger import LedgerActivities
from activities.payments import PaymentActivities
from activities.tasks import TaskActivities
from config.runtime import open_resources
from config.settings import Settings
from config.temporal import connect_temporal
from workflows import billing_cycles, holds
from workflows.billing_cycles import MonthlyAllocationWorkflow, RetentionWorkflow
from workflows.callbacks import CallbackDeliveryWorkflow
from workflows.health import HealthWorkflow
from workflows.holds import HoldSweepWorkflow
from workflows.media import MediaTaskWorkflow
from workflows.payments import AutoRechargeWorkflow, StripeEventWorkflow

log = logging.getLogger("oxinf.worker")

WORKFLOWS: Sequence[type] = [
    HealthWorkflow,
    HoldSweepWorkflow,
    CallbackDeliveryWorkflow,
    MediaTaskWorkflow,
    StripeEventWorkflow,
    AutoRechargeWorkflow,
    MonthlyAllocationWorkflow,
    RetentionWorkflow,
]


def build_activities(deps: ActivityDeps) -> list[Callable[..., Any]]:
    health = HealthActivities(deps)
    ledger = LedgerActivities(deps)
    callbacks = CallbackActivities(deps)
    task = TaskActivities(deps)
    payments = PaymentActivities(deps)
    cycles = BillingCycleActivities(deps)
    return [
        health.ping_database,
        ledger.expire_stale_holds,
        callbacks.deliver,
        task.submit,
        task.poll,
        task.store_results,
        task.finalize,
        task.reconcile,
        task.recover_stuck,
        payments.apply_stripe_event,
        payments.prepare_recharge,
        payments.charge_recharge,
        payments.recharge_rearmed,
        cycles.allocate_batch,
        cycles.plan_rollup,
        cycles.rollup_batch,
        cycles.delete_details,
        cycles.trim_callbacks,
        cycles.delete_rate_windows,
        cycles.delete_results,
    ]


def build_worker(client: Client, deps: ActivityDeps, task_queue: str) -> Worker:
    return Worker(
        client,
        task_queue=task_queue,
        workflows=list(WORKFLOWS),
        activities=build_activities(deps),
        graceful_shutdown_timeout=timedelta(seconds=10),
    )


async def ensure_schedules(client: Client, settings: Settings) -> None:
    """Create or update every schedule; idempotent so each replica may call it at start."""
    await _upsert_schedule(client, holds.SCHEDULE_ID, hold_sweeper_schedule(settings))
    await _upsert_schedule(
        client, billing_cycles.ALLOCATION_SCHEDULE_ID, monthly_allocations_schedule(settings)
    )
    await _upsert_schedule(
        client, billing_cycles.RETENTION_SCHEDULE_ID, nightly_retention_schedule(settings)
    )


def hold_sweeper_schedule(settings: Settings) -> Schedule:
    """Every minute; a run still going when the next is due means the next is skipped."""
    return _schedule(
        _start(settings, HoldSweepWorkflow.run, holds.SweepInput(), holds.WORKFLOW_ID,
               timeout=timedelta(minutes=10)),
        ScheduleSpec(intervals=[ScheduleIntervalSpec(every=holds.SWEEP_EVERY)]),
    )  # fmt: skip


def monthly_allocations_schedule(settings: Settings) -> Schedule:
    """00:00 UTC on the 1st. A run missed by up to a day (Temporal down) still happens; the
    workflow reads the period from its scheduled time, so a late run allocates the right
    month, and its ledger keys make any rerun a no-op."""
    return _schedule(
        _start(settings, MonthlyAllocationWorkflow.run,
               billing_cycles.AllocationInput(batch_size=settings.allocation_batch_size),
               billing_cycles.ALLOCATION_WORKFLOW_ID, timeout=timedelta(days=1)),
        _daily_utc("monthly allocations", hour=0, minute=0, day_of_month=1),
        catchup=timedelta(days=1),
    )  # fmt: skip


def nightly_retention_schedule(settings: Settings) -> Schedule:
    """03:30 UTC nightly; a missed night is caught up within 12 hours, else skipped (the
    next night does the same work)."""
    return _schedule(
        _start(settings, RetentionWorkflow.run,
               billing_cycles.RetentionInput(batch_size=settings.retention_batch_size),
               billing_cycles.RETENTION_WORKFLOW_ID, timeout=timedelta(hours=6)),
        _daily_utc("nightly retention", hour=3, minute=30),
        catchup=timedelta(hours=12),
    )  # fmt: skip


def _start(
    settings: Settings, run: Any, arg: Any, workflow_id: str, *, timeout: timedelta
) -> ScheduleActionStartWorkflow:
    return ScheduleActionStartWorkflow(
        run, arg, id=workflow_id, task_queue=settings.task_queue, execution_timeout=timeout
    )


def _daily_utc(
    comment: str, *, hour: int, minute: int, day_of_month: int | None = None
) -> ScheduleSpec:
    """At hour:minute:00 UTC, every day or on one day of the month."""
    at: dict[str, Any] = {}
    if day_of_month is not None:
        at["day_of_month"] = [ScheduleRange(day_of_month)]
    calendar = ScheduleCalendarSpec(
        second=[ScheduleRange(0)], minute=[ScheduleRange(minute)], hour=[ScheduleRange(hour)],
        comment=comment, **at,
    )  # fmt: skip
    return ScheduleSpec(calendars=[calendar], time_zone_name="UTC")


def _schedule(
    action: ScheduleActionStartWorkflow, spec: ScheduleSpec, *, catchup: timedelta | None = None
) -> Schedule:
    """Overlapping runs are skipped: each workflow finishes what a skipped run would do."""
    policy = (
        SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP)
        if catchup is None
        else SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=catchup)
    )
    return Schedule(action=action, spec=spec, policy=policy)


async def _upsert_schedule(client: Client, schedule_id: str, schedule: Schedule) -> None:
    """Create, or replace the definition of, a schedule.

    The code owns what runs and when (action, spec, policy); an operator owns whether it runs,
    so a pause set in the Temporal UI survives a worker restart.
    """
    try:
        await client.create_schedule(schedule_id, schedule)
    except ScheduleAlreadyRunningError:

        def replace(current: ScheduleUpdateInput) -> ScheduleUpdate:
            state = current.description.schedule.state
            return ScheduleUpdate(schedule=dataclasses.replace(schedule, state=state))

        await client.get_schedule_handle(schedule_id).update(replace)
        log.info("schedule updated", extra={"schedule_id": schedule_id})
    else:
        log.info("schedule created", extra={"schedule_id": schedule_id})


RESTART_PAUSE_S = 1.0
RESTART_PAUSE_MAX_S = 30.0


class WorkerDefinitionError(RuntimeError):
    """The worker itself is broken (a workflow failing validation, say): no retry helps."""


async def run_worker(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Poll until SIGINT/SIGTERM (or `stop`), riding out Temporal outages.

    The SDK's worker re-polls by itself through short outages; if it gives up (a fatal
    error), or Temporal is not there at start, this connects and starts a fresh worker with
    growing pauses, forever, instead of exiting. Workflows resume where their history left
    them; activities that failed meanwhile are retried by their retry policies.
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    resources = open_resources(settings)
    deps = ActivityDeps(settings=settings, sessions=resources.sessions, http=resources.http)
    pause = RESTART_PAUSE_S
    try:
        while not stop.is_set():
            started = loop.time()
            try:
                await _run_once(settings, deps, stop)
            except WorkerDefinitionError:
                raise
            except Exception as exc:
                if loop.time() - started > RESTART_PAUSE_MAX_S:
                    pause = RESTART_PAUSE_S  # it ran fine for a while: start over quickly
                log.warning(
                    "worker lost Temporal; starting again",
                    extra={"error": type(exc).__name__, "detail": str(exc)[:300],
                           "retry_in_s": pause},
                )  # fmt: skip
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), pause)
                pause = min(pause * 2, RESTART_PAUSE_MAX_S)
        log.info("worker stopping")
    finally:
        await resources.aclose()


async def _run_once(settings: Settings, deps: ActivityDeps, stop: asyncio.Event) -> None:
    """Connect, (re)register schedules and poll until `stop`; raises if any step fails."""
    client = await connect_temporal(settings)
    await ensure_schedules(client, settings)
    try:
        worker = build_worker(client, deps, settings.task_queue)
    except Exception as exc:
        raise WorkerDefinitionError(f"the worker cannot be built: {exc}") from exc
    run = asyncio.create_task(worker.run())
    stopping = asyncio.create_task(stop.wait())
    log.info("worker started", extra={"task_queue": settings.task_queue})
    try:
        await asyncio.wait({run, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        if not run.done():
            await worker.shutdown()
    await run  # re-raises a fatal worker error
