"""The hold sweeper: its workflow on the time-skipping server, its schedule on the dev server."""

from __future__ import annotations

import contextlib
import uuid
from datetime import timedelta

from temporalio.client import (
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
)
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from activities.deps import ActivityDeps
from config.runtime import Resources
from tests.domain.factories import CREDIT, backdate_hold, key_budget, make_api_key, make_org
from tests.domain.invariants import assert_books_balance
from tests.fixtures.ledger import Ledger
from worker import WORKFLOWS, build_activities, build_worker, ensure_schedules
from workflows.holds import SCHEDULE_ID, HoldSweepWorkflow, SweepInput, SweepReport


def _deps(resources: Resources) -> ActivityDeps:
    return ActivityDeps(
        settings=resources.settings, sessions=resources.sessions, http=resources.http
    )


async def test_sweep_workflow_releases_crashed_holds_in_batches(
    time_skipping_env: WorkflowEnvironment, resources: Resources
) -> None:
    org_id = await make_org(resources.sessions, funded_micros=100 * CREDIT)
    key_id = await make_api_key(resources.sessions, org_id, budget_micros=50 * CREDIT)
    book = Ledger(resources.sessions)
    crashed = [
        await book.reserve(
            org_id, 3 * CREDIT, key=f"crash:{i}", expires_in=timedelta(minutes=5), api_key_id=key_id
        )
        for i in range(5)
    ]
    alive = await book.reserve(org_id, 4 * CREDIT, key="alive", expires_in=timedelta(hours=1))
    for res in crashed:
        await backdate_hold(resources.sessions, res.hold.id, timedelta(hours=1))

    queue = f"test-{uuid.uuid4()}"
    async with build_worker(time_skipping_env.client, _deps(resources), queue):
        report = await time_skipping_env.client.execute_workflow(
            HoldSweepWorkflow.run,
            SweepInput(batch_size=2, max_batches=10),
            id=f"hold-sweep-{uuid.uuid4()}",
            task_queue=queue,
        )
        # batches of 2: 2 + 2 + 1, the short batch ends the run
        assert report == SweepReport(batches=3, expired=5, released_micros=15 * CREDIT)
        again = await time_skipping_env.client.execute_workflow(
            HoldSweepWorkflow.run,
            SweepInput(),
            id=f"hold-sweep-{uuid.uuid4()}",
            task_queue=queue,
        )
    assert again == SweepReport(batches=1, expired=0, released_micros=0)
    books = await assert_books_balance(resources.sessions, org_id)
    assert (books.available, books.pending_count) == (96 * CREDIT, 1)
    assert await key_budget(resources.sessions, key_id) == (0, 0)
    assert (await book.void(alive.hold.id)).status == "voided"


def test_sweeper_is_registered(resources: Resources) -> None:
    names = {
        getattr(fn, "__temporal_activity_definition").name
        for fn in build_activities(_deps(resources))
    }
    assert "ledger.expire_stale_holds" in names
    assert HoldSweepWorkflow in WORKFLOWS


async def test_schedule_is_created_once_and_updated_in_place(
    dev_server_env: WorkflowEnvironment, resources: Resources
) -> None:
    client = dev_server_env.client
    settings = resources.settings
    handle = client.get_schedule_handle(SCHEDULE_ID)
    # The dev server is shared by the session: a worker started by another test may have
    # registered the real schedule already. Start from none.
    with contextlib.suppress(RPCError):
        await handle.delete()
    # a stale definition from an older release: every 5 minutes, overlapping allowed
    await client.create_schedule(
        SCHEDULE_ID,
        Schedule(
            action=ScheduleActionStartWorkflow(
                "HoldSweep", SweepInput(), id="old", task_queue="old-queue"
            ),
            spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(minutes=5))]),
            policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.ALLOW_ALL),
        ),
    )
    try:
        await handle.pause(note="operator says: not now")
        await ensure_schedules(client, settings)
        await ensure_schedules(client, settings)  # every replica calls it at start

        listed = [s.id async for s in await client.list_schedules() if s.id == SCHEDULE_ID]
        assert listed == [SCHEDULE_ID]
        described = (await handle.describe()).schedule
        assert described.spec.intervals == [ScheduleIntervalSpec(every=timedelta(seconds=60))]
        assert described.policy.overlap == ScheduleOverlapPolicy.SKIP
        action = described.action
        assert isinstance(action, ScheduleActionStartWorkflow)
        assert action.workflow == "HoldSweep"
        assert action.id == "hold-sweeper"
        assert action.task_queue == settings.task_queue
        assert described.state.paused  # the operator's pause survives the update
    finally:
        await handle.delete()

    await ensure_schedules(client, settings)  # and from nothing, it creates
    try:
        fresh = (await handle.describe()).schedule
        assert fresh.policy.overlap == ScheduleOverlapPolicy.SKIP
        assert not fresh.state.paused
    finally:
        await handle.delete()
