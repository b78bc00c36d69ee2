"""Copying results into the store as a step of the task workflow: real tasks on Temporal's
time-skipping server, the fake upstream over HTTP (its result files too), PostgreSQL and the
local file store."""

from __future__ import annotations

import uuid
from typing import Any

from prometheus_client import generate_latest
from sqlalchemy import text
from temporalio.testing import WorkflowEnvironment

from api.metrics import GAUGES
from api.metrics_registry import REGISTRY
from config.runtime import Resources
from domain.ops import service as ops
from domain.providers.media import MediaOutcome
from domain.results import copy
from domain.results import repository as results_repo
from schema.results import TaskResult
from tests.fakes.provider import FakeProvider, Fault, fake_file, fake_video_bytes
from tests.fixtures.relay import balance, ledger_sums_hold, make_tenant
from tests.fixtures.tasks import (
    UNIT_PRICES,
    add_jobs_channel,
    add_media_model,
    task_api,
)


async def rows_of(resources: Resources, task_id: str) -> list[TaskResult]:
    async with resources.sessions() as s:
        return await results_repo.for_task(s, uuid.UUID(task_id))


async def image_tenant(resources: Resources, fake: FakeProvider, provider: str = "jobs") -> Any:
    await add_media_model(resources, "img", "image")
    await add_jobs_channel(resources, fake, provider, ["img"], provider=provider)
    return await make_tenant(resources)


async def copy_again(resources: Resources, task_id: str) -> list[copy.StoredResult]:
    """What a retried store step does: the activity's own call, with the same outcome."""
    async with resources.sessions() as s:
        row = (
            await s.execute(text("SELECT result FROM tasks WHERE id = :id"), {"id": task_id})
        ).scalar_one()
    outcome = MediaOutcome(status="succeeded", urls=row["urls"], units=len(row["urls"]))
    return await copy.copy_results(
        resources.sessions, resources.results.store,
        copy.Clients(channel=resources.http, public=resources.tenant_http),
        resources.secret_box, resources.relay.cfg, resources.results.limits,
        uuid.UUID(task_id), outcome,
    )  # fmt: skip


async def test_results_are_copied_once_under_their_own_keys(
    resources: Resources, time_skipping_env: WorkflowEnvironment, results_fake: FakeProvider
) -> None:
    tenant = await image_tenant(resources, results_fake)
    start, _ = await balance(resources, tenant.org_id)
    async with task_api(resources, time_skipping_env) as api:
        task_id = await api.submit(
            tenant.auth, type="image", model="img", input={"prompt": "x", "n": 2}
        )
        done = await api.finished(tenant.auth, task_id)
    assert done["status"] == "succeeded"
    assert (done["charged_micros"], done["refunded_micros"]) == (2 * UNIT_PRICES["image"], 0)
    end, available = await balance(resources, tenant.org_id)
    assert start - end == 2 * UNIT_PRICES["image"] and available == end

    (job,) = results_fake.jobs()
    rows = await rows_of(resources, task_id)
    assert [(r.idx, r.state, r.object_key, r.content_type) for r in rows] == [
        (i, "stored", f"tasks/{task_id}/{i}", "image/png") for i in (0, 1)
    ]
    for i, r in enumerate(rows):
        blob = await resources.results.store.open(r.object_key)
        assert await blob.read() == fake_file(f"/files/jobs/{job.id}/{i}.png")[2]
        assert r.size_bytes == blob.info.size
    assert len(results_fake.calls("/files/")) == 2

    # A retried store step fetches nothing it already stored...
    again = await copy_again(resources, task_id)
    assert [(s.index, s.content_type) for s in again] == [(0, "image/png"), (1, "image/png")]
    assert len(results_fake.calls("/files/")) == 2
    # ...and a result whose row was lost (a crash after the put) lands on the same key again.
    async with resources.sessions.begin() as s:
        await s.execute(text("DELETE FROM task_results WHERE task_id = :t AND idx = 1"),
                        {"t": task_id})  # fmt: skip
    await copy_again(resources, task_id)
    assert len(results_fake.calls("/files/")) == 3
    folder = resources.settings.data_dir / "blobs" / "tasks" / task_id
    assert sorted(p.name for p in folder.iterdir()) == ["0", "0.type", "1", "1.type"]
    assert [r.state for r in await rows_of(resources, task_id)] == ["stored", "stored"]


async def test_a_transient_failure_is_retried_until_the_copy_lands(
    resources: Resources, time_skipping_env: WorkflowEnvironment, results_fake: FakeProvider
) -> None:
    tenant = await image_tenant(resources, results_fake)
    results_fake.add_fault(Fault(kind="status", path="/files/", status=503, times=2))
    async with task_api(resources, time_skipping_env) as api:
        task_id = await api.submit(tenant.auth, type="image", model="img", input={"prompt": "x"})
        done = await api.finished(tenant.auth, task_id)
    assert done["status"] == "succeeded"
    assert done["result"]["urls"][0].startswith(f"http://t/v1/files/{task_id}/0?")
    assert len(results_fake.calls("/files/")) == 3
    assert [r.state for r in await rows_of(resources, task_id)] == ["stored"]


async def test_a_redirect_on_the_channels_host_is_followed(
    resources: Resources, time_skipping_env: WorkflowEnvironment, results_fake: FakeProvider
) -> None:
    tenant = await image_tenant(resources, results_fake)
    results_fake.files_redirect = results_fake.base_url
    async with task_api(resources, time_skipping_env) as api:
        task_id = await api.submit(tenant.auth, type="image", model="img", input={"prompt": "x"})
        done = await api.finished(tenant.auth, task_id)
    assert done["status"] == "succeeded"
    (job,) = results_fake.jobs()
    moved = f"/files/r/jobs/{job.id}/0.png"
    assert [c.path for c in results_fake.calls("/files/")] == [f"/files/jobs/{job.id}/0.png", moved]
    blob = await resources.results.store.open(f"tasks/{task_id}/0")
    assert await blob.read() == fake_file(moved)[2]


async def test_a_redirect_to_a_private_host_is_refused_and_the_task_still_succeeds(
    resources: Resources,
    time_skipping_env: WorkflowEnvironment,
    results_fake: FakeProvider,
    elsewhere: FakeProvider,
) -> None:
    """Leaving the channel's host means the tenant egress policy: loopback is not public.
    A refused copy is not retried, the customer keeps the provider's URLs, is charged for
    the work (never refunded for something delivered), and operators see the failure."""
    tenant = await image_tenant(resources, results_fake)
    results_fake.files_redirect = elsewhere.base_url
    start, _ = await balance(resources, tenant.org_id)
    async with task_api(resources, time_skipping_env) as api:
        task_id = await api.submit(tenant.auth, type="image", model="img", input={"prompt": "x"})
        done = await api.finished(tenant.auth, task_id)
        async with resources.sessions() as s:
            timeline = await ops.task_timeline(
                s, uuid.UUID(task_id), lambda: _client(time_skipping_env),
                ui_base="http://ui", namespace="default",
            )  # fmt: skip
    assert done["status"] == "succeeded"
    assert done["charged_micros"] == UNIT_PRICES["image"] and done["refunded_micros"] == 0
    (job,) = results_fake.jobs()
    assert done["result"]["urls"] == [f"{results_fake.base_url}/files/jobs/{job.id}/0.png"]
    assert elsewhere.requests == []  # refused before connecting
    assert len(results_fake.calls("/files/")) == 1  # a refusal is not retried
    (row,) = await rows_of(resources, task_id)
    assert (row.state, row.idx) == ("failed", 0)
    assert row.error is not None and "egress policy" in row.error
    end, available = await balance(resources, tenant.org_id)
    assert start - end == UNIT_PRICES["image"] and available == end
    await ledger_sums_hold(resources, tenant.org_id)

    events = [e for e in timeline["timeline"] if e["source"] == "results"]
    assert [e["event"] for e in events] == ["result.copy_failed"]
    GAUGES.expire()
    await GAUGES.refresh(resources.sessions)
    metrics = generate_latest(REGISTRY).decode()
    assert "oxinf_task_result_copy_failures_total 1.0" in metrics


async def _client(env: WorkflowEnvironment) -> Any:
    return env.client


async def test_a_redirect_to_a_public_host_is_followed_without_the_channels_key(
    resources: Resources,
    time_skipping_env: WorkflowEnvironment,
    results_fake: FakeProvider,
    elsewhere: FakeProvider,
) -> None:
    """An OpenAI video opens with the channel's key; its redirect to a CDN does not get it.
    (Loopback stands in for a public host: the worker's policy admits private hosts.)"""
    await add_media_model(resources, "vid", "video")
    await add_jobs_channel(resources, results_fake, "openai", ["vid"], provider="openai")
    tenant = await make_tenant(resources, credits_micros=10_000 * 1_000_000)
    results_fake.job_polls_until_done = 1
    results_fake.files_redirect = elsewhere.base_url
    async with task_api(resources, time_skipping_env, tenant_egress_allow_private=True) as api:
        task_id = await api.submit(
            tenant.auth, type="video", model="vid", input={"prompt": "waves", "seconds": 4}
        )
        done = await api.finished(tenant.auth, task_id)
    assert done["status"] == "succeeded"
    (job_id,) = results_fake.video_ids()
    (asked,) = results_fake.calls(f"/v1/videos/{job_id}/content")
    assert asked.headers["authorization"] == f"Bearer {results_fake.api_key}"
    (fetched,) = elsewhere.calls("/files/")
    assert fetched.path == f"/files/r/videos/{job_id}.mp4"
    assert "authorization" not in fetched.headers
    blob = await resources.results.store.open(f"tasks/{task_id}/0")
    assert (await blob.read(), blob.info.content_type) == (
        fake_video_bytes(fetched.path),
        "video/mp4",
    )


async def test_a_result_over_the_size_bound_is_not_stored(
    resources: Resources, time_skipping_env: WorkflowEnvironment, results_fake: FakeProvider
) -> None:
    tenant = await image_tenant(resources, results_fake)
    async with task_api(resources, time_skipping_env, result_max_bytes_image=100) as api:
        task_id = await api.submit(tenant.auth, type="image", model="img", input={"prompt": "x"})
        done = await api.finished(tenant.auth, task_id)
    assert done["status"] == "succeeded"
    assert done["result"]["urls"][0].startswith(f"{results_fake.base_url}/files/")
    (row,) = await rows_of(resources, task_id)
    assert row.state == "failed" and row.error == "the result is larger than 100 bytes"
    assert await resources.results.store.head(f"tasks/{task_id}/0") is None
    assert len(results_fake.calls("/files/")) == 1


async def test_the_demo_providers_media_are_real_files_at_0xinfs_urls(
    resources: Resources, time_skipping_env: WorkflowEnvironment, results_fake: FakeProvider
) -> None:
    """What `make dev` users get: a PNG and an MP4 they can open, at 0xinf's own URLs."""
    await add_media_model(resources, "demo-img", "image")
    await add_media_model(resources, "demo-vid", "video")
    await add_jobs_channel(resources, results_fake, "demo", ["demo-img", "demo-vid"],
                           provider="demo")  # fmt: skip
    tenant = await make_tenant(resources, credits_micros=10_000 * 1_000_000)
    async with task_api(resources, time_skipping_env) as api:
        image = await api.submit(
            tenant.auth, type="image", model="demo-img", input={"prompt": "a fox", "n": 2}
        )
        video = await api.submit(
            tenant.auth, type="video", model="demo-vid", input={"prompt": "sea", "seconds": 2}
        )
        images = (await api.finished(tenant.auth, image))["result"]["urls"]
        (clip,) = (await api.finished(tenant.auth, video))["result"]["urls"]
        pngs = [await api.client.get(url) for url in images]
        mp4 = await api.client.get(clip)
    assert [r.headers["content-type"] for r in pngs] == ["image/png"] * 2
    assert all(r.content.startswith(b"\x89PNG\r\n\x1a\n") for r in pngs)
    assert pngs[0].content != pngs[1].content
    assert mp4.headers["content-type"] == "video/mp4"
    assert mp4.content[4:12] == b"ftypisom" and b"mdat" in mp4.content
    assert results_fake.requests == []  # the demo needs no network
