"""Monthly allocations on the Temporal dev server: explicit runs, the schedule, backfills."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from temporalio.client import (
    Client,
    ScheduleActionResult,
    ScheduleActionStartWorkflow,
    ScheduleBackfill,
    ScheduleCalendarSpec,
    ScheduleOverlapPolicy,
    ScheduleRange,
)
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from config.runtime import Resources
from tests.billing.conftest import MICROS, deps_for, rows
from tests.domain.factories import make_org
from tests.fixtures.conditions import eventually
from worker import build_worker, ensure_schedules
from workflows import holds
from workflows.billing_cycles import (
    ALLOCATION_SCHEDULE_ID,
    ALLOCATION_WORKFLOW_ID,
    RETENTION_SCHEDULE_ID,
    AllocationInput,
    AllocationReport,
    MonthlyAllocationWorkflow,
    period_of,
)

EXPECTED = {  # tier -> whole credits (settings.tier_allocations), override for one enterprise
    "free": 0,
    "trial": 5_000,
    "starter": 20_000,
    "professional": 60_000,
    "enterprise": 0,
    "enterprise+": 100_000,
}


async def _orgs(resources: Resources) -> dict[str, uuid.UUID]:
    orgs = {}
    for label in EXPECTED:
        tier = label.rstrip("+")
        orgs[label] = await make_org(resources.sessions, tier=tier, funded_micros=7 * MICROS)
    async with resources.sessions.begin() as s:
        await s.execute(
            text(
                "INSERT INTO org_billing (org_id, allocation_credits_override) VALUES (:o, 100000)"
            ),
            {"o": orgs["enterprise+"]},
        )
    return orgs


async def _allocations(resources: Resources) -> dict[tuple[uuid.UUID, str], int]:
    found = await rows(
        resources,
        "SELECT org_id, idempotency_key, amount_micros FROM ledger_entries"
        " WHERE kind = 'allocation'",
    )
    out: dict[tuple[uuid.UUID, str], int] = {}
    for r in found:
        period = r["idempotency_key"].rsplit(":", 1)[1]
        key = (r["org_id"], period)
        assert key not in out, f"allocated twice: {key}"
        out[key] = r["amount_micros"]
    return out


def _expected(orgs: dict[str, uuid.UUID], *periods: str) -> dict[tuple[uuid.UUID, str], int]:
    return {
        (orgs[label], period): credits * MICROS
        for period in periods
        for label, credits in EXPECTED.items()
        if credits
    }


async def _scheduled_run(client: Client, workflow_id: str) -> AllocationReport:
    # The dev server's scheduler starts backfilled runs asynchronously; with the whole suite
    # and browsers on two cores that once took over a minute, so wait up to three (returning
    # as soon as it exists).
    handle = client.get_workflow_handle(workflow_id, result_type=AllocationReport)

    async def started() -> bool:
        try:
            await handle.describe()
        except RPCError:
            return False
        return True

    await eventually(started, within=180, what=f"{workflow_id} started")
    return await handle.result()


async def test_allocations_credit_once_per_period_through_runs_schedule_and_backfill(
    dev_server_env: WorkflowEnvironment, resources: Resources
) -> None:
    client = dev_server_env.client
    queue = f"alloc-{uuid.uuid4()}"
    settings = resources.settings.model_copy(
        update={"task_queue": queue, "allocation_batch_size": 2}
    )
    orgs = await _orgs(resources)

    async with build_worker(client, deps_for(resources, settings), queue):
        # Explicit period, small batches and continue-as-new, twice.
        params = AllocationInput(period="2024-01", batch_size=2, batches_per_run=2)
        first = await client.execute_workflow(
            MonthlyAllocationWorkflow.run, params, id=f"alloc-test-{uuid.uuid4()}", task_queue=queue
        )
        again = await client.execute_workflow(
            MonthlyAllocationWorkflow.run, params, id=f"alloc-test-{uuid.uuid4()}", task_queue=queue
        )
        assert (first.totals.orgs, first.totals.credited, first.totals.skipped) == (6, 4, 2)
        assert first.totals.runs == 2  # 3 batches of 2 with 2 per run: continued as new once
        assert first.totals.credited_micros == 185_000 * MICROS
        assert (again.totals.credited, again.totals.already) == (0, 4)
        assert await _allocations(resources) == _expected(orgs, "2024-01")

        await ensure_schedules(client, settings)
        await client.get_schedule_handle(holds.SCHEDULE_ID).delete()  # not this test's business
        handle = client.get_schedule_handle(ALLOCATION_SCHEDULE_ID)
        try:
            described = (await handle.describe()).schedule
            (calendar,) = described.spec.calendars
            assert isinstance(calendar, ScheduleCalendarSpec)
            assert list(calendar.day_of_month) == [ScheduleRange(1)]
            assert [list(calendar.hour), list(calendar.minute)] == [[ScheduleRange(0)]] * 2
            assert described.spec.time_zone_name == "UTC"
            assert described.policy.overlap == ScheduleOverlapPolicy.SKIP
            assert described.policy.catchup_window == timedelta(days=1)
            action = described.action
            assert isinstance(action, ScheduleActionStartWorkflow)
            assert (action.workflow, action.id, action.task_queue) == (
                "MonthlyAllocation",
                ALLOCATION_WORKFLOW_ID,
                queue,
            )
            next_run = (await handle.describe()).info.next_action_times[0]
            assert (next_run.day, next_run.hour, next_run.minute) == (1, 0, 0)

            # Triggered by hand now: allocates the current month, from the scheduled time.
            await handle.trigger(overlap=ScheduleOverlapPolicy.ALLOW_ALL)

            async def acted() -> list[ScheduleActionResult]:
                return list((await handle.describe()).info.recent_actions)

            recent = await eventually(acted, within=60, what="the triggered run started")
            triggered = await _scheduled_run(client, recent[0].action.workflow_id)
            current = period_of(datetime.now(UTC))
            assert triggered.period == current and triggered.totals.credited == 4

            # Backfills: January 2024 again (no-op) and December 2023 (new), as the schedule
            # would have run them, period derived from each scheduled time.
            for month in (datetime(2024, 1, 1, tzinfo=UTC), datetime(2023, 12, 1, tzinfo=UTC)):
                await handle.backfill(
                    ScheduleBackfill(
                        start_at=month - timedelta(minutes=1),
                        end_at=month + timedelta(minutes=1),
                        overlap=ScheduleOverlapPolicy.ALLOW_ALL,
                    )
                )
            jan = await _scheduled_run(client, f"{ALLOCATION_WORKFLOW_ID}-2024-01-01T00:00:00Z")
            dec = await _scheduled_run(client, f"{ALLOCATION_WORKFLOW_ID}-2023-12-01T00:00:00Z")
            assert (jan.period, jan.totals.credited, jan.totals.already) == ("2024-01", 0, 4)
            assert (dec.period, dec.totals.credited) == ("2023-12", 4)
            assert await _allocations(resources) == _expected(orgs, "2024-01", "2023-12", current)

            retention = (
                await client.get_schedule_handle(RETENTION_SCHEDULE_ID).describe()
            ).schedule
            assert retention.policy.overlap == ScheduleOverlapPolicy.SKIP
            assert isinstance(retention.action, ScheduleActionStartWorkflow)
            assert retention.action.workflow == "Retention"
        finally:
            await handle.delete()
            await client.get_schedule_handle(RETENTION_SCHEDULE_ID).delete()

    # Unused credits roll over: every org still has its 7 credits plus every allocation.
    for label, org in orgs.items():
        (account,) = await rows(
            resources, "SELECT balance_micros FROM credit_accounts WHERE org_id = :o", o=org
        )
        assert account["balance_micros"] == (7 + 3 * EXPECTED[label]) * MICROS
