"""Task lifecycle under Temporal's time-skipping server: settle, refund, deadline, cancel."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from config.runtime import Resources
from config.temporal import TemporalHandle
from schema.unit_of_work import unit_of_work
from tests.fakes.provider import FakeProvider
from tests.fixtures.conditions import eventually
from tests.fixtures.relay import balance, ledger_sums_hold, pending_holds
from tests.fixtures.tasks import (
    UNIT_PRICES,
    media_tenant,
    running_worker,
)
from tests.fixtures.temporal import workflow_result
from workflows.media import TaskDone


@pytest.fixture
async def task_app(
    resources: Resources, time_skipping_env: WorkflowEnvironment
) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """The API wired to the time-skipping server, and a worker on a fresh task queue."""
    queue = f"tasks-{uuid.uuid4()}"
    original_temporal, original_settings = resources.temporal, resources.settings
    resources.settings = resources.settings.model_copy(
        update={"task_queue": queue, "task_deadline_video_s": 120}
    )
    resources.temporal = TemporalHandle(resources.settings, time_skipping_env.client)
    app: FastAPI = create_app(resources=resources)
    try:
        async with (
            running_worker(time_skipping_env.client, resources, queue),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
        ):
            yield c, queue
    finally:
        resources.temporal, resources.settings = original_temporal, original_settings


async def _submit(client: httpx.AsyncClient, key: str, **body: object) -> dict[str, object]:
    resp = await client.post("/v1/tasks", json=body, headers={"authorization": f"Bearer {key}"})
    assert resp.status_code == 202, resp.text
    return dict(resp.json())


async def _wait_terminal(
    env: WorkflowEnvironment, client: httpx.AsyncClient, key: str, task_id: object
) -> dict[str, object]:
    await workflow_result(env, f"task-{task_id}", TaskDone)  # the API started it
    resp = await client.get(f"/v1/tasks/{task_id}", headers={"authorization": f"Bearer {key}"})
    return dict(resp.json())


async def test_success_settles_actual_units(
    task_app: tuple[httpx.AsyncClient, str], resources: Resources, media_fake: FakeProvider,
    time_skipping_env: WorkflowEnvironment,
) -> None:  # fmt: skip
    client, _ = task_app
    tenant, start = await media_tenant(resources, media_fake, "img-test", "image")

    task = await _submit(
        client, tenant.key, type="image", model="img-test", input={"prompt": "a cat", "n": 3}
    )
    assert task["status"] == "pending"
    assert task["estimate_micros"] == 3 * UNIT_PRICES["image"]
    _, available = await balance(resources, tenant.org_id)
    assert start - available == 3 * UNIT_PRICES["image"], "reserved before 202"

    done = await _wait_terminal(time_skipping_env, client, tenant.key, task["id"])
    assert done["status"] == "succeeded", done["error"]
    assert done["units"] == 3 and len(done["result"]["urls"]) >= 1  # type: ignore[index]
    assert done["charged_micros"] == 3 * UNIT_PRICES["image"] and done["refunded_micros"] == 0
    end, available = await balance(resources, tenant.org_id)
    assert start - end == 3 * UNIT_PRICES["image"] and available == end
    assert await pending_holds(resources) == 0
    await ledger_sums_hold(resources, tenant.org_id)


async def test_upstream_failure_refunds_fully(
    task_app: tuple[httpx.AsyncClient, str], resources: Resources, media_fake: FakeProvider,
    time_skipping_env: WorkflowEnvironment,
) -> None:  # fmt: skip
    client, _ = task_app
    tenant, start = await media_tenant(resources, media_fake, "vid-test", "video")
    media_fake.job_outcome = "failed"
    task = await _submit(
        client, tenant.key, type="video", model="vid-test", input={"prompt": "waves", "seconds": 5}
    )
    done = await _wait_terminal(time_skipping_env, client, tenant.key, task["id"])
    assert done["status"] == "failed"
    assert done["error"]["code"] == "content_policy"  # type: ignore[index]
    assert done["charged_micros"] == 0 and done["refunded_micros"] == 5 * UNIT_PRICES["video"]
    assert await balance(resources, tenant.org_id) == (start, start)
    assert await pending_holds(resources) == 0


async def test_deadline_fails_and_refunds(
    task_app: tuple[httpx.AsyncClient, str], resources: Resources, media_fake: FakeProvider,
    time_skipping_env: WorkflowEnvironment,
) -> None:  # fmt: skip
    client, _ = task_app
    tenant, start = await media_tenant(resources, media_fake, "vid-test", "video")
    media_fake.job_polls_until_done = 10_000  # never finishes within the 120 s deadline
    task = await _submit(
        client, tenant.key, type="video", model="vid-test", input={"prompt": "slow"}
    )
    done = await _wait_terminal(time_skipping_env, client, tenant.key, task["id"])
    assert done["status"] == "failed"
    assert done["error"]["code"] == "deadline_exceeded"  # type: ignore[index]
    assert await balance(resources, tenant.org_id) == (start, start)
    assert await pending_holds(resources) == 0


async def test_cancel_refunds(
    task_app: tuple[httpx.AsyncClient, str], resources: Resources, media_fake: FakeProvider,
    time_skipping_env: WorkflowEnvironment,
) -> None:  # fmt: skip
    client, _ = task_app
    tenant, start = await media_tenant(resources, media_fake, "vid-test", "video")
    media_fake.job_polls_until_done = 10_000
    task = await _submit(client, tenant.key, type="video", model="vid-test", input={"prompt": "x"})

    async def processing() -> bool:
        got = await client.get(f"/v1/tasks/{task['id']}", headers=tenant.auth)
        return bool(got.json()["status"] == "processing")

    await eventually(processing, within=10, what="the task processing upstream")
    canceled = await client.post(f"/v1/tasks/{task['id']}/cancel", headers=tenant.auth)
    assert canceled.status_code == 200
    assert canceled.json()["status"] == "canceled"
    assert canceled.json()["refunded_micros"] == 4 * UNIT_PRICES["video"]
    assert await balance(resources, tenant.org_id) == (start, start)
    again = await client.post(f"/v1/tasks/{task['id']}/cancel", headers=tenant.auth)
    assert again.json()["status"] == "canceled"
    assert await pending_holds(resources) == 0


async def test_sweeper_starts_a_task_whose_workflow_never_started(
    task_app: tuple[httpx.AsyncClient, str], resources: Resources, media_fake: FakeProvider,
    time_skipping_env: WorkflowEnvironment,
) -> None:  # fmt: skip
    """The API committed the task and its hold, then died before starting the workflow."""
    from sqlalchemy import text

    from api.relay.tasks import task_config
    from domain.tasks import service as tasks
    from workflows.holds import HoldSweepWorkflow, SweepInput

    _, queue = task_app
    tenant, start = await media_tenant(resources, media_fake, "img-test", "image")
    principal = await resources.key_auth.authenticate(tenant.key)
    async with unit_of_work(resources.sessions) as session:
        task, created = await tasks.create_task(
            session, task_config(resources), principal, task_type="image",
            model="img-test", task_input={"prompt": "orphan"}, callback_url=None,
            idempotency_key=None, request_id="req_orphan",
        )  # fmt: skip
    assert created
    async with resources.sessions.begin() as s:
        await s.execute(
            text("UPDATE tasks SET created_at = now() - interval '10 minutes' WHERE id = :i"),
            {"i": task.id},
        )
    await time_skipping_env.client.execute_workflow(
        HoldSweepWorkflow.run, SweepInput(), id=f"sweep-{uuid.uuid4()}", task_queue=queue
    )
    done = await _wait_terminal(time_skipping_env, task_app[0], tenant.key, task.id)
    assert done["status"] == "succeeded", done["error"]
    end, available = await balance(resources, tenant.org_id)
    assert start - end == UNIT_PRICES["image"] and available == end
    assert await pending_holds(resources) == 0
