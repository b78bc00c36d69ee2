"""What the media adapters give a retried submit: the task's key on every submit, a lookup by
that key where the API has one, and a way to stop a job nobody will poll."""

from __future__ import annotations

import httpx
import pytest

from domain.providers import UpstreamError
from domain.providers.media import media_adapter_for
from tests.fakes.provider import FakeProvider, Fault
from tests.providers.helpers import upstream_for

MODEL = "public-media-model"
KEY = "task-0b6f6c1e-4d3b-4a8e-9d55-3f3c0d9e7a10-1"


@pytest.mark.parametrize(
    ("provider", "media_type", "path"),
    [
        ("jobs", "video", "/jobs"),
        ("openai", "video", "/v1/videos"),
        ("openai", "image", "/v1/images/generations"),
        ("openai", "audio", "/v1/audio/speech"),
    ],
)
async def test_every_submit_carries_the_key(
    http: httpx.AsyncClient, fake: FakeProvider, provider: str, media_type: str, path: str
) -> None:
    data = {"text": "hi"} if media_type == "audio" else {"prompt": "p"}
    await media_adapter_for(provider).submit(
        http, upstream_for(fake, provider), media_type, MODEL, data,  # type: ignore[arg-type]
        idempotency_key=KEY,
    )  # fmt: skip
    (sent,) = fake.calls(path)
    assert sent.headers["idempotency-key"] == KEY
    if provider == "jobs":
        assert sent.json["client_reference"] == KEY


async def test_jobs_resend_under_the_same_key_returns_the_same_job(
    http: httpx.AsyncClient, fake: FakeProvider
) -> None:
    adapter, upstream = media_adapter_for("jobs"), upstream_for(fake, "jobs")
    first = await adapter.submit(
        http, upstream, "image", MODEL, {"prompt": "p"}, idempotency_key=KEY
    )
    again = await adapter.submit(
        http, upstream, "image", MODEL, {"prompt": "p"}, idempotency_key=KEY
    )
    assert first.upstream_job_id == again.upstream_job_id and len(fake.live_jobs()) == 1


async def test_jobs_find_by_key_after_a_lost_answer_then_cancel(
    http: httpx.AsyncClient, fake: FakeProvider
) -> None:
    adapter = media_adapter_for("jobs")
    upstream = upstream_for(fake, "jobs", timeout_s=0.3)
    assert adapter.finds_by_reference
    fake.add_fault(Fault("slow_answer", path="/jobs", method="POST", delay_s=1.0))
    with pytest.raises(UpstreamError) as lost:
        await adapter.submit(http, upstream, "video", MODEL, {"prompt": "p"}, idempotency_key=KEY)
    assert lost.value.kind == "timeout"
    (job,) = fake.jobs()
    assert await adapter.find(http, upstream, "video", KEY) == [job.id]
    assert await adapter.find(http, upstream, "video", KEY + "0") == []

    assert await adapter.cancel(http, upstream, "video", job.id) == "canceled"
    assert fake.live_jobs() == []
    assert await adapter.cancel(http, upstream, "video", "job_gone") == "canceled"  # 404


async def test_jobs_cancel_of_a_finished_job_is_too_late(
    http: httpx.AsyncClient, fake: FakeProvider
) -> None:
    adapter, upstream = media_adapter_for("jobs"), upstream_for(fake, "jobs")
    fake.job_polls_until_done = 0
    sub = await adapter.submit(http, upstream, "image", MODEL, {"prompt": "p"}, idempotency_key=KEY)
    assert sub.upstream_job_id is not None
    assert (await adapter.poll(http, upstream, "image", sub.upstream_job_id)).terminal
    assert await adapter.cancel(http, upstream, "image", sub.upstream_job_id) == "finished"
    fake.add_fault(Fault("status", path="/jobs/", status=503))
    with pytest.raises(UpstreamError) as failed:
        await adapter.cancel(http, upstream, "image", sub.upstream_job_id)
    assert failed.value.retryable


async def test_openai_has_no_lookup_and_deletes_a_video_to_stop_it(
    http: httpx.AsyncClient, fake: FakeProvider
) -> None:
    adapter, upstream = media_adapter_for("openai"), upstream_for(fake, "openai")
    assert not adapter.finds_by_reference
    assert await adapter.find(http, upstream, "video", KEY) is None
    sub = await adapter.submit(http, upstream, "video", MODEL, {"prompt": "p"}, idempotency_key=KEY)
    assert sub.upstream_job_id is not None
    assert await adapter.cancel(http, upstream, "video", sub.upstream_job_id) == "canceled"
    assert fake.live_jobs() == []
    assert await adapter.cancel(http, upstream, "image", "anything") == "unsupported"


async def test_demo_needs_neither(http: httpx.AsyncClient, fake: FakeProvider) -> None:
    adapter, upstream = media_adapter_for("demo"), upstream_for(fake, "demo")
    assert await adapter.find(http, upstream, "video", KEY) is None
    assert await adapter.cancel(http, upstream, "video", "demo-video-4-0") == "unsupported"
