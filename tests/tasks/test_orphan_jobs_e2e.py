"""Lost submit answers through the whole workflow on the Temporal dev server: a read timeout
ends in the adopted job, and a provider that ignores idempotency keys gets its stray job
cancelled by the workflow's reconcile step, which /metrics counts and the timeline shows."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from api.metrics import GAUGES
from config.runtime import Resources
from config.temporal import TemporalHandle
from tests.fakes.provider import FakeProvider, Fault
from tests.fixtures.relay import balance, ledger_sums_hold, pending_holds
from tests.fixtures.tasks import UNIT_PRICES, media_tenant, running_worker
from tests.portal.helpers import operator_headers

READ_TIMEOUT_S = 0.5


@pytest.fixture
async def api(
    resources: Resources, dev_server_env: WorkflowEnvironment
) -> AsyncIterator[httpx.AsyncClient]:
    queue = f"orphans-{uuid.uuid4()}"
    saved = resources.temporal, resources.settings
    resources.settings = resources.settings.model_copy(update={"task_queue": queue})
    resources.temporal = TemporalHandle(resources.settings, dev_server_env.client)
    app = create_app(resources=resources)
    try:
        async with (
            running_worker(
                dev_server_env.client, resources, queue, upstream_timeout_s=READ_TIMEOUT_S
            ),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
        ):
            yield c
    finally:
        resources.temporal, resources.settings = saved


async def _run_task(
    api: httpx.AsyncClient, env: WorkflowEnvironment, auth: dict[str, str]
) -> dict[str, Any]:
    """Submits a 2-second video and waits for its workflow to close (reconcile included)."""
    resp = await api.post(
        "/v1/tasks",
        json={"type": "video", "model": "vid-orphan", "input": {"prompt": "x", "seconds": 2}},
        headers=auth,
    )
    assert resp.status_code == 202, resp.text
    task_id = resp.json()["id"]
    await env.client.get_workflow_handle(f"task-{task_id}").result()
    return dict((await api.get(f"/v1/tasks/{task_id}", headers=auth)).json())


async def _timeline(
    api: httpx.AsyncClient, resources: Resources, task_id: str
) -> list[dict[str, Any]]:
    ops = await operator_headers(api, resources)
    body = (await api.get(f"/ops/v1/tasks/{task_id}/timeline", headers=ops)).json()
    assert body["temporal"]["available"], body["temporal"]
    return list(body["timeline"])


async def test_read_timeout_in_submit_adopts_the_job(
    api: httpx.AsyncClient, resources: Resources, media_fake: FakeProvider,
    dev_server_env: WorkflowEnvironment,
) -> None:  # fmt: skip
    tenant, _ = await media_tenant(resources, media_fake, "vid-orphan", "video")
    media_fake.add_fault(Fault("slow_answer", path="/jobs", method="POST", delay_s=2.0))

    done = await _run_task(api, dev_server_env, tenant.auth)

    assert done["status"] == "succeeded" and done["units"] == 2
    assert len(media_fake.live_jobs()) == len(media_fake.jobs()) == 1
    timeline = await _timeline(api, resources, done["id"])
    accepted = next(e for e in timeline if e["event"] == "upstream.accepted")
    assert accepted["data"]["adopted"] is True and accepted["data"]["sends"] == 1
    steps = {e["data"].get("step") for e in timeline if e["source"] == "temporal"}
    assert "tasks.reconcile" not in steps  # nothing can be astray: no look needed
    assert await pending_holds(resources) == 0
    await ledger_sums_hold(resources, tenant.org_id)


async def test_provider_ignoring_keys_gets_its_stray_job_cancelled_by_the_workflow(
    api: httpx.AsyncClient, resources: Resources, media_fake: FakeProvider,
    dev_server_env: WorkflowEnvironment,
) -> None:  # fmt: skip
    """The first request reaches the provider only after our read timeout and the empty
    lookup, so the resend makes a second job; the workflow's last step finds and cancels the
    first once the task has settled."""
    tenant, start = await media_tenant(resources, media_fake, "vid-orphan", "video")
    media_fake.honour_idempotency_keys = False
    media_fake.job_polls_until_done = 2
    media_fake.add_fault(Fault("latency", path="/jobs", method="POST", delay_s=1.2))

    done = await _run_task(api, dev_server_env, tenant.auth)

    assert done["status"] == "succeeded"
    jobs = media_fake.jobs()
    assert len(jobs) == 2 and len(media_fake.live_jobs()) == 1
    stray = next(j for j in jobs if j.canceled)
    assert stray.client_reference == f"task-{done['id']}-1"
    timeline = await _timeline(api, resources, done["id"])
    events = [e["event"] for e in timeline]
    assert events.index("task.succeeded") < events.index("upstream.orphan_found")
    assert "upstream.orphan_canceled" in events
    steps = [e["data"].get("step") for e in timeline if e["event"] == "activity_task_completed"]
    assert steps[-1] == "tasks.reconcile"
    GAUGES.expire()
    metrics = (await api.get("/metrics")).text
    assert 'oxinf_task_upstream_orphans_total{event="found"} 1' in metrics
    assert 'oxinf_task_upstream_orphans_total{event="canceled"} 1' in metrics
    end, _ = await balance(resources, tenant.org_id)
    assert start - end == 2 * UNIT_PRICES["video"]  # one task, billed once
    assert await pending_holds(resources) == 0
    await ledger_sums_hold(resources, tenant.org_id)
