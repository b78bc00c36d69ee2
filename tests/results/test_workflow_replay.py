"""The store step is replay-safe: a task workflow whose history was written before the step
existed replays on today's code without a nondeterminism error, and so does a new one."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from temporalio import workflow
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner, Worker

from activities.deps import ActivityDeps
from api.app import create_app
from config.runtime import Resources
from config.temporal import TemporalHandle
from tests.fakes.provider import FakeProvider
from tests.fixtures.relay import make_tenant
from tests.fixtures.tasks import add_jobs_channel, add_media_model
from worker import build_activities
from workflows.media import STORE, STORE_PATCH, MediaTaskWorkflow


@contextmanager
def before_the_store_step(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Workflow code as it was: `patched(STORE_PATCH)` false and no marker written."""
    real = workflow.patched

    def patched(patch_id: str) -> bool:
        return False if patch_id == STORE_PATCH else real(patch_id)

    with monkeypatch.context() as m:
        m.setattr(workflow, "patched", patched)
        yield


async def run_task(resources: Resources, env: Any) -> Any:
    queue = f"replay-{uuid.uuid4()}"
    saved = resources.temporal, resources.settings
    resources.settings = resources.settings.model_copy(update={"task_queue": queue})
    resources.temporal = TemporalHandle(resources.settings, env.client)
    deps = ActivityDeps(
        settings=resources.settings, sessions=resources.sessions, http=resources.http
    )
    tenant = await make_tenant(resources)
    try:
        async with (
            Worker(
                env.client, task_queue=queue, workflows=[MediaTaskWorkflow],
                activities=build_activities(deps),
                workflow_runner=UnsandboxedWorkflowRunner(),  # so the old code can be stood in
            ),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=create_app(resources=resources)),
                base_url="http://t",
            ) as client,
        ):  # fmt: skip
            resp = await client.post(
                "/v1/tasks",
                json={"type": "image", "model": "img-replay", "input": {"prompt": "x"}},
                headers=tenant.auth,
            )
            handle = env.client.get_workflow_handle(f"task-{resp.json()['id']}")
            async with env.time_skipping_unlocked():
                await handle.result()
            task = (await client.get(f"/v1/tasks/{resp.json()['id']}", headers=tenant.auth)).json()
    finally:
        resources.temporal, resources.settings = saved
    history = await handle.fetch_history()
    scheduled = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]
    return task, history, scheduled


async def test_histories_from_before_and_after_the_store_step_replay(
    resources: Resources,
    time_skipping_env: Any,
    results_fake: FakeProvider,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await add_media_model(resources, "img-replay", "image")
    await add_jobs_channel(resources, results_fake, "jobs", ["img-replay"])

    with before_the_store_step(monkeypatch):
        old_task, old_history, old_steps = await run_task(resources, time_skipping_env)
    new_task, new_history, new_steps = await run_task(resources, time_skipping_env)
    assert STORE not in old_steps and STORE in new_steps
    # Before the step: the provider's URLs, as tasks always had them; after: signed ones.
    assert old_task["result"]["urls"][0].startswith(f"{results_fake.base_url}/files/")
    assert new_task["result"]["urls"][0].startswith("http://t/v1/files/")

    replayer = Replayer(workflows=[MediaTaskWorkflow], data_converter=pydantic_data_converter)
    for history in (old_history, new_history):
        result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        assert result.replay_failure is None, result.replay_failure
