"""A submit whose answer was lost finds the job it made; jobs the task will not use are
cancelled. Driven through `domain.tasks` against the fake upstream over HTTP and the real
database, so each path (lookup, same-key resend, racing attempts, reconciliation) is pinned
without a workflow in the way."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import uuid

import httpx
import pytest

from api.metrics import GAUGES
from api.relay.tasks import task_config
from config.runtime import Resources
from domain.relay.plan import RelayConfig
from domain.tasks import dispatch, orphans, submissions
from domain.tasks import repository as repo
from domain.tasks import service as tasks
from schema.tasks import Task, TaskOrphanJob, TaskSubmission
from schema.unit_of_work import unit_of_work
from tests.fakes.provider import FakeProvider, Fault
from tests.fixtures.conditions import eventually
from tests.fixtures.relay import make_tenant
from tests.fixtures.tasks import add_jobs_channel, add_media_model
from tests.portal.helpers import operator_headers

READ_TIMEOUT_S = 0.3
VIDEO = {"prompt": "waves", "seconds": 2}


def _cfg(resources: Resources) -> RelayConfig:
    return dataclasses.replace(resources.relay.cfg, upstream_timeout_s=READ_TIMEOUT_S)


async def _task(
    resources: Resources,
    fake: FakeProvider,
    *,
    provider: str = "jobs",
    media_type: str = "video",
    task_input: dict[str, object] | None = None,
) -> tuple[Task, uuid.UUID]:
    """A task with its hold, on a channel of `provider` (returned too)."""
    model = f"{media_type}-{provider}-rec"
    await add_media_model(resources, model, media_type)
    channel = await add_jobs_channel(resources, fake, f"ch-{provider}", [model], provider=provider)
    tenant = await make_tenant(resources)
    principal = await resources.key_auth.authenticate(tenant.key)
    async with unit_of_work(resources.sessions) as session:
        task, _ = await tasks.create_task(
            session, task_config(resources), principal, task_type=media_type,
            model=model, task_input=task_input or VIDEO, callback_url=None,
            idempotency_key=None, request_id=f"req_{uuid.uuid4().hex[:12]}",
        )  # fmt: skip
    return task, channel


async def _submit(resources: Resources, task: Task) -> dispatch.Submitted:
    return await dispatch.submit(
        resources.sessions, resources.http, resources.secret_box, _cfg(resources), task.id,
        random.Random(0),
    )  # fmt: skip


async def _state(
    resources: Resources, task_id: uuid.UUID
) -> tuple[Task, list[TaskSubmission], list[TaskOrphanJob]]:
    async with resources.sessions() as s:
        task = await repo.get(s, task_id)
        assert task is not None
        return task, await repo.submissions(s, task_id), await repo.orphans(s, task_id)


def _posts(fake: FakeProvider, path: str) -> list[str | None]:
    """The idempotency key of every job-creating request the upstream received."""
    return [c.headers.get("idempotency-key") for c in fake.calls(path) if c.method == "POST"]


@pytest.mark.parametrize("honour_keys", [True, False])
async def test_read_timeout_then_lookup_adopts_the_job_the_lost_answer_described(
    resources: Resources, media_fake: FakeProvider, honour_keys: bool
) -> None:
    media_fake.honour_idempotency_keys = honour_keys
    task, _ = await _task(resources, media_fake)
    media_fake.add_fault(Fault("slow_answer", path="/jobs", method="POST", delay_s=1.0))

    done = await _submit(resources, task)

    assert done.status == "processing" and done.reconcile_after_s is None
    (job,) = media_fake.jobs()
    key = submissions.idempotency_key(task.id, 1)
    assert _posts(media_fake, "/jobs") == [key]  # looked up, never sent twice
    assert job.client_reference == key and not job.canceled
    row, (attempt,), found = await _state(resources, task.id)
    assert row.status == "processing" and row.upstream_job_id == job.id
    assert (attempt.state, attempt.adopted, attempt.sends) == ("accepted", True, 1)
    assert found == []


async def test_without_lookup_the_same_key_is_resent_and_the_job_replayed(
    resources: Resources, media_fake: FakeProvider
) -> None:
    """OpenAI has no lookup by reference: the resend under the same key gets the same job."""
    task, _ = await _task(resources, media_fake, provider="openai")
    media_fake.add_fault(Fault("slow_answer", path="/v1/videos", method="POST", delay_s=1.0))

    done = await _submit(resources, task)

    assert done.status == "processing" and done.reconcile_after_s is None
    (video,) = media_fake.video_ids()
    key = submissions.idempotency_key(task.id, 1)
    assert _posts(media_fake, "/v1/videos") == [key, key]
    row, (attempt,), _ = await _state(resources, task.id)
    assert row.upstream_job_id == video
    assert (attempt.state, attempt.adopted, attempt.sends) == ("accepted", False, 2)


async def test_a_retried_submit_adopts_the_job_a_dead_worker_left_behind(
    resources: Resources, media_fake: FakeProvider
) -> None:
    task, channel = await _task(resources, media_fake)
    async with resources.sessions.begin() as s:  # the dead worker's attempt, then its request
        attempt = await submissions.begin_attempt(s, task.id, channel_id=channel, provider="jobs")
    assert attempt is not None
    sent = httpx.post(
        f"{media_fake.base_url}/jobs",
        json={"model": "m", "type": "video", "input": VIDEO,
              "client_reference": attempt.idempotency_key},
        headers={"authorization": f"Bearer {media_fake.api_key}",
                 "idempotency-key": attempt.idempotency_key},
    ).json()  # fmt: skip

    done = await _submit(resources, task)

    assert done.status == "processing"
    assert len(_posts(media_fake, "/jobs")) == 1  # only the dead worker's
    row, (adopted,), _ = await _state(resources, task.id)
    assert row.upstream_job_id == sent["id"] and adopted.adopted and adopted.state == "accepted"


async def test_provider_ignoring_keys_orphan_is_cancelled_counted_and_shown(
    resources: Resources, media_fake: FakeProvider, client: httpx.AsyncClient
) -> None:
    """The first request reaches the provider late (after our read timeout and the empty
    lookup), so the resend makes a second job; reconciliation finds the first and stops it."""
    media_fake.honour_idempotency_keys = False
    task, _ = await _task(resources, media_fake)
    media_fake.add_fault(Fault("latency", path="/jobs", method="POST", delay_s=1.0))

    done = await _submit(resources, task)

    assert done.status == "processing"
    assert done.reconcile_after_s is not None and done.reconcile_after_s > 0
    key = submissions.idempotency_key(task.id, 1)
    assert _posts(media_fake, "/jobs") == [key, key]

    async def both_jobs() -> bool:
        return len(media_fake.jobs()) == 2

    await eventually(both_jobs, within=10, what="the late first job created upstream")
    row, _, _ = await _state(resources, task.id)
    late = next(j for j in media_fake.jobs() if j.id != row.upstream_job_id)

    first = await orphans.reconcile(
        resources.sessions, resources.http, resources.secret_box, _cfg(resources), task.id
    )
    again = await orphans.reconcile(
        resources.sessions, resources.http, resources.secret_box, _cfg(resources), task.id
    )

    assert (first.found, first.canceled, first.still_open) == (1, 1, 0)
    assert (again.found, again.canceled, again.still_open) == (0, 0, 0)
    assert [j.id for j in media_fake.live_jobs()] == [row.upstream_job_id]
    _, _, (orphan,) = await _state(resources, task.id)
    assert (orphan.upstream_job_id, orphan.reason, orphan.state) == (
        late.id,
        "duplicate",
        "canceled",
    )
    assert (orphan.attempt, orphan.idempotency_key) == (1, key)

    GAUGES.expire()
    metrics = (await client.get("/metrics")).text
    assert 'oxinf_task_upstream_orphans_total{event="found"} 1' in metrics
    assert 'oxinf_task_upstream_orphans_total{event="canceled"} 1' in metrics
    assert "# TYPE oxinf_task_upstream_orphans_total counter" in metrics

    ops = await operator_headers(client, resources)
    body = (await client.get(f"/ops/v1/tasks/{task.id}/timeline", headers=ops)).json()
    events = [e["event"] for e in body["timeline"] if e["source"] == "upstream"]
    assert events == [
        "upstream.submitting", "upstream.accepted", "upstream.orphan_found",
        "upstream.orphan_canceled",
    ]  # fmt: skip
    found = next(e for e in body["timeline"] if e["event"] == "upstream.orphan_found")
    assert found["data"]["upstream_job_id"] == late.id and found["data"]["idempotency_key"] == key
    view = (await client.get(f"/ops/v1/tasks/{task.id}", headers=ops)).json()
    assert view["orphan_jobs"][0]["state"] == "canceled"
    assert view["upstream_submissions"][0]["sends"] == 2


async def test_racing_submits_keep_one_job_and_a_failed_cancel_is_retried(
    resources: Resources, media_fake: FakeProvider
) -> None:
    """Two attempts in flight at once (Temporal retried one it thought dead): the first to
    answer gives the task its job; the other's job is cancelled, here on the second try."""
    media_fake.honour_idempotency_keys = False
    task, _ = await _task(resources, media_fake)
    # The first cancel (POST /jobs/{id}/cancel) fails; then both creates are answered slowly.
    media_fake.add_fault(Fault("status", path="/jobs/", method="POST", status=503))
    media_fake.add_fault(Fault("slow_answer", path="/jobs", method="POST", delay_s=0.2, times=None))
    cfg = dataclasses.replace(_cfg(resources), upstream_timeout_s=5.0)

    async def run() -> dispatch.Submitted:
        return await dispatch.submit(
            resources.sessions, resources.http, resources.secret_box, cfg, task.id,
            random.Random(),
        )  # fmt: skip

    results = await asyncio.gather(run(), run())

    assert [r.status for r in results] == ["processing", "processing"]
    row, attempts, (orphan,) = await _state(resources, task.id)
    assert sorted(a.state for a in attempts) == ["accepted", "superseded"]
    assert (orphan.reason, orphan.state) == ("lost_race", "cancel_failed")
    assert len(media_fake.live_jobs()) == 2
    assert any(r.reconcile_after_s == 0 for r in results)  # the open orphan asks for a look

    retried = await orphans.reconcile(
        resources.sessions, resources.http, resources.secret_box, cfg, task.id
    )
    assert (retried.found, retried.canceled, retried.still_open) == (0, 1, 0)
    assert [j.id for j in media_fake.live_jobs()] == [row.upstream_job_id]


async def test_a_synchronous_result_is_kept_so_a_retry_does_not_pay_again(
    resources: Resources, media_fake: FakeProvider
) -> None:
    task, _ = await _task(
        resources, media_fake, provider="openai", media_type="image",
        task_input={"prompt": "a fox", "n": 2},
    )  # fmt: skip
    first = await _submit(resources, task)
    again = await _submit(resources, task)  # the activity's result was lost with its worker

    assert first.status == again.status == "succeeded"
    assert first.outcome == again.outcome and first.outcome is not None
    assert len(_posts(media_fake, "/v1/images/generations")) == 1
    async with resources.sessions.begin() as s:
        await tasks.finalize(s, task.id, "succeeded", outcome=first.outcome)
    _, (attempt,), _ = await _state(resources, task.id)
    assert attempt.state == "accepted" and attempt.outcome is None  # the task holds it now


async def test_an_answer_arriving_after_the_task_ended_is_an_orphan(
    resources: Resources, media_fake: FakeProvider
) -> None:
    task, _ = await _task(resources, media_fake)
    async with resources.sessions.begin() as s:
        attempt = await submissions.begin_attempt(s, task.id, channel_id=None, provider="jobs")
        await tasks.finalize(s, task.id, "canceled")
    assert attempt is not None
    async with resources.sessions.begin() as s:
        acc = await submissions.accept(
            s, task.id, attempt, upstream_job_id="job_late", outcome=None, adopted=False
        )
    assert (acc.accepted, acc.winner, acc.task_status) == (False, None, "canceled")
    async with resources.sessions.begin() as s:
        assert await submissions.begin_attempt(s, task.id, channel_id=None, provider="jobs") is None
    _, (closed,), _ = await _state(resources, task.id)
    assert (closed.state, closed.upstream_job_id) == ("superseded", "job_late")
