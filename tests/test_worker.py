"""The worker's registration lists run a real workflow against Temporal's test server."""

from __future__ import annotations

import uuid

from temporalio.testing import WorkflowEnvironment

from activities.deps import ActivityDeps
from config.runtime import Resources
from worker import WORKFLOWS, build_activities, build_worker
from workflows.health import HealthReport, HealthWorkflow


async def test_health_workflow_runs_through_the_worker(
    time_skipping_env: WorkflowEnvironment, resources: Resources
) -> None:
    deps = ActivityDeps(
        settings=resources.settings, sessions=resources.sessions, http=resources.http
    )
    queue = f"test-{uuid.uuid4()}"
    async with build_worker(time_skipping_env.client, deps, queue):
        report = await time_skipping_env.client.execute_workflow(
            HealthWorkflow.run, id=f"health-{uuid.uuid4()}", task_queue=queue
        )
    assert report == HealthReport(worker="ok", database="ok")


def test_registration_lists_are_explicit(resources: Resources) -> None:
    deps = ActivityDeps(
        settings=resources.settings, sessions=resources.sessions, http=resources.http
    )
    names = {getattr(fn, "__temporal_activity_definition").name for fn in build_activities(deps)}
    assert "health.ping_database" in names
    assert HealthWorkflow in WORKFLOWS
