"""The official `openai` SDK against the media shims, on the Temporal dev server with the fake
upstream over HTTP: what it parses is a result, never a task body, and what it cannot have in
time is an error it raises, while the task carries on and is charged once."""

from __future__ import annotations

import base64
import io
import uuid
import wave
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from sqlalchemy import text
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from config.runtime import Resources
from config.temporal import TemporalHandle
from tests.fakes.provider import FakeProvider, Fault, fake_file, fake_video_bytes
from tests.fixtures.conditions import eventually
from tests.fixtures.relay import Tenant, balance, ledger_sums_hold, make_tenant
from tests.fixtures.tasks import UNIT_PRICES, add_jobs_channel, add_media_model, running_worker

BASE = "http://t"


@asynccontextmanager
async def sdk_for(
    resources: Resources, env: WorkflowEnvironment, tenant: Tenant, *, shim_wait_s: float = 20.0
) -> AsyncIterator[tuple[openai.AsyncOpenAI, httpx.AsyncClient]]:
    """The SDK (its own retries on, as users have them) and a plain client, both on the app."""
    queue = f"shims-{uuid.uuid4()}"
    saved = resources.temporal, resources.settings
    resources.settings = resources.settings.model_copy(
        update={"task_queue": queue, "shim_wait_s": shim_wait_s}
    )
    resources.temporal = TemporalHandle(resources.settings, env.client)
    app = create_app(resources=resources)
    try:
        async with (
            running_worker(env.client, resources, queue),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http,
        ):
            sdk = openai.AsyncOpenAI(base_url=f"{BASE}/v1", api_key=tenant.key, http_client=http)
            yield sdk, http
    finally:
        resources.temporal, resources.settings = saved


async def media_models(resources: Resources, fake: FakeProvider) -> Tenant:
    await add_media_model(resources, "img-sdk", "image")
    await add_media_model(resources, "vid-sdk", "video")
    await add_media_model(resources, "tts-demo", "audio")
    await add_jobs_channel(resources, fake, "openai", ["img-sdk", "vid-sdk"], provider="openai")
    await add_jobs_channel(resources, fake, "demo", ["tts-demo"], provider="demo")
    return await make_tenant(resources, credits_micros=10_000 * 1_000_000)


async def debits(resources: Resources, org_id: uuid.UUID) -> dict[str, int]:
    """Debit entries by ledger key (one per settled hold), whatever the retries."""
    async with resources.sessions() as s:
        rows = (
            await s.execute(
                text(
                    "SELECT idempotency_key, amount_micros FROM ledger_entries"
                    " WHERE org_id = :o AND kind = 'debit' ORDER BY id"
                ),
                {"o": org_id},
            )
        ).all()
    return {str(r[0]): -int(r[1]) for r in rows}


async def test_images_generate_url_and_b64_json_with_n_2(
    resources: Resources, dev_server_env: WorkflowEnvironment, media_fake: FakeProvider
) -> None:
    tenant = await media_models(resources, media_fake)
    start, _ = await balance(resources, tenant.org_id)
    async with sdk_for(resources, dev_server_env, tenant) as (sdk, http):
        by_url = await sdk.images.generate(model="img-sdk", prompt="a lighthouse", n=2)
        inline = await sdk.images.generate(
            model="img-sdk", prompt="a lighthouse", n=2, response_format="b64_json"
        )
        assert by_url.data is not None and inline.data is not None
        # 0xinf's own short-lived URLs: they open without a key (as in an <img> tag).
        downloads = [await http.get(d.url or "") for d in by_url.data]
    urls = [call.path for call in media_fake.calls("/files/")]
    assert len(urls) == 4  # each image copied once
    assert [d.url is not None and d.url.startswith(f"{BASE}/v1/files/") for d in by_url.data] == [
        True,
        True,
    ]
    assert [(r.status_code, r.headers["content-type"]) for r in downloads] == [
        (200, "image/png")
    ] * 2
    assert [r.content for r in downloads] == [fake_file(p)[2] for p in urls[:2]]
    assert [base64.b64decode(d.b64_json or "") for d in inline.data] == [
        fake_file(p)[2] for p in urls[2:]
    ]
    assert all(d.url is None for d in inline.data)

    charged = await debits(resources, tenant.org_id)
    assert list(charged.values()) == [2 * UNIT_PRICES["image"]] * 2
    end, _ = await balance(resources, tenant.org_id)
    assert start - end == 4 * UNIT_PRICES["image"]
    await ledger_sums_hold(resources, tenant.org_id)


async def test_audio_speech_saves_real_audio_to_a_file(
    resources: Resources,
    dev_server_env: WorkflowEnvironment,
    media_fake: FakeProvider,
    tmp_path: Path,
) -> None:
    tenant = await media_models(resources, media_fake)
    target = tmp_path / "speech.wav"
    async with (
        sdk_for(resources, dev_server_env, tenant) as (sdk, _),
        sdk.audio.speech.with_streaming_response.create(
            model="tts-demo", voice="alloy", input="hello there", response_format="wav"
        ) as response,
    ):
        assert response.headers["content-type"] == "audio/wav"
        await response.stream_to_file(target)
    with wave.open(io.BytesIO(target.read_bytes())) as audio:
        assert (audio.getnchannels(), audio.getframerate()) == (1, 8000)
        frames = audio.readframes(audio.getnframes())
    assert len(frames) == 2000 and len(set(frames)) > 10  # a tone, not silence
    assert list((await debits(resources, tenant.org_id)).values()) == [UNIT_PRICES["audio"]]


async def test_videos_download_content_after_the_providers_copy_expired(
    resources: Resources, dev_server_env: WorkflowEnvironment, media_fake: FakeProvider
) -> None:
    tenant = await media_models(resources, media_fake)
    media_fake.job_polls_until_done = 1
    async with sdk_for(resources, dev_server_env, tenant) as (sdk, _):
        created = await sdk.videos.create(model="vid-sdk", prompt="waves", seconds="4")

        async def settled() -> Any:
            video = await sdk.videos.retrieve(created.id)
            return video if video.status in ("completed", "failed") else None

        video = await eventually(settled, within=20, what="the video finished")
        assert video.status == "completed"
        media_fake.video_content_expired = True  # the provider's download link is gone
        download = await sdk.videos.download_content(video.id)
    (job_id,) = media_fake.video_ids()
    assert download.content == fake_video_bytes(job_id)
    assert len(media_fake.calls(f"/v1/videos/{job_id}/content")) == 1  # the copy, nothing since
    assert list((await debits(resources, tenant.org_id)).values()) == [4 * UNIT_PRICES["video"]]


@pytest.mark.parametrize("shim", ["images", "speech"])
async def test_a_shim_that_outlasts_its_wait_makes_the_sdk_raise_and_the_task_completes(
    resources: Resources, dev_server_env: WorkflowEnvironment, media_fake: FakeProvider, shim: str
) -> None:
    """With its retries on, the SDK sends the request once (`x-should-retry: false`): a
    retry would start, and charge, the same work again."""
    await add_media_model(resources, "img-slow", "image")
    await add_media_model(resources, "tts-slow", "audio")
    await add_jobs_channel(resources, media_fake, "openai", ["img-slow", "tts-slow"],
                           provider="openai")  # fmt: skip
    tenant = await make_tenant(resources)
    start, _ = await balance(resources, tenant.org_id)
    path = "/v1/images/generations" if shim == "images" else "/v1/audio/speech"
    media_fake.add_fault(Fault(kind="latency", path=path, delay_s=2.0))
    async with sdk_for(resources, dev_server_env, tenant, shim_wait_s=0.3) as (sdk, http):
        with pytest.raises(openai.InternalServerError) as raised:
            if shim == "images":
                await sdk.images.generate(model="img-slow", prompt="slow")
            else:
                await sdk.audio.speech.create(model="tts-slow", voice="alloy", input="slow")
        error = raised.value
        task_id = error.response.headers["x-oxinf-task-id"]
        assert error.status_code == 504
        assert isinstance(error.body, dict) and error.body["code"] == "timeout"
        assert task_id in error.message and f"GET /v1/tasks/{task_id}" in error.message

        async def finished() -> bool:
            view = await http.get(f"/v1/tasks/{task_id}", headers=tenant.auth)
            return bool(view.json()["status"] == "succeeded")

        await eventually(finished, within=30, what="the task finished")
    assert len(media_fake.calls(path)) == 1
    unit = UNIT_PRICES["image" if shim == "images" else "audio"]
    assert list((await debits(resources, tenant.org_id)).values()) == [unit]
    end, available = await balance(resources, tenant.org_id)
    assert start - end == unit and available == end
