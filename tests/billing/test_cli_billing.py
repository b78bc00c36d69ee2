"""`oxinf schedules list` and `oxinf retention run`, against the Temporal dev server."""

from __future__ import annotations

import uuid
from typing import Any

from temporalio.testing import WorkflowEnvironment

from cli import build_parser, retention_via_temporal, schedule_rows
from config.runtime import Resources
from tests.billing.conftest import deps_for
from tests.fixtures.conditions import eventually
from worker import build_worker, ensure_schedules
from workflows import holds
from workflows.billing_cycles import ALLOCATION_SCHEDULE_ID, RETENTION_SCHEDULE_ID


async def test_schedules_list_shows_spec_next_run_and_pause(
    dev_server_env: WorkflowEnvironment, resources: Resources
) -> None:
    client = dev_server_env.client
    await ensure_schedules(client, resources.settings)
    try:
        await client.get_schedule_handle(RETENTION_SCHEDULE_ID).pause(note="maintenance")
        wanted = {ALLOCATION_SCHEDULE_ID, RETENTION_SCHEDULE_ID, holds.SCHEDULE_ID}

        async def all_listed() -> dict[str, Any] | None:
            listed = {row[0]: row[1:] for row in await schedule_rows(client)}
            return listed if wanted <= listed.keys() else None

        # Listing goes through visibility, which may lag a moment.
        listed = await eventually(all_listed, within=5, what="every schedule listed")
        monthly_spec, monthly_next, monthly_paused = listed[ALLOCATION_SCHEDULE_ID]
        assert monthly_spec == "cron 0 0 1 * * (UTC)"
        assert monthly_next.endswith("-01T00:00:00+00:00") and monthly_paused == "no"
        nightly_spec, _, nightly_paused = listed[RETENTION_SCHEDULE_ID]
        assert (nightly_spec, nightly_paused) == ("cron 30 3 * * * (UTC)", "yes")
        assert listed[holds.SCHEDULE_ID][0] == "every 60s (UTC)"
    finally:
        for schedule_id in (ALLOCATION_SCHEDULE_ID, RETENTION_SCHEDULE_ID, holds.SCHEDULE_ID):
            await client.get_schedule_handle(schedule_id).delete()


async def test_retention_run_starts_the_workflow_and_waits(
    dev_server_env: WorkflowEnvironment, resources: Resources
) -> None:
    args = build_parser().parse_args(["retention", "run", "--timeout", "30"])
    assert args.timeout == 30.0
    queue = f"retention-cli-{uuid.uuid4()}"
    settings = resources.settings.model_copy(update={"task_queue": queue})
    async with build_worker(dev_server_env.client, deps_for(resources, settings), queue):
        report = await retention_via_temporal(dev_server_env.client, settings, 30)
    assert report.complete and report.details_deleted == 0
