"""`GET /v1/tasks/{id}/content`: real tasks run by a worker on Temporal's time-skipping server,
the fake upstream over HTTP and PostgreSQL; the streaming cases go over a real socket.

Succeeded tasks' results are copied into the result store, so downloads come from there; the
cases that exercise the provider path (a task that succeeded before the store, or whose copy
gave up) first make the task forget its stored copy."""

from __future__ import annotations

import asyncio
import base64
import threading
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from config.runtime import Resources
from config.temporal import TemporalHandle
from domain.keys.service import create_key
from tests.fakes.provider import (
    VIDEO_CONTENT_BYTES,
    FakeProvider,
    Fault,
    fake_file,
    fake_video_bytes,
)
from tests.fixtures.portal import PASSWORD
from tests.fixtures.relay import Tenant, live_server, make_tenant
from tests.fixtures.tasks import add_jobs_channel, add_media_model, forget_stored, running_worker
from tests.fixtures.temporal import workflow_result
from workflows.media import TaskDone

BASE = "http://t"


@dataclass
class TaskApi:
    client: httpx.AsyncClient
    app: FastAPI
    env: WorkflowEnvironment

    async def submit(self, tenant: Tenant, **body: Any) -> str:
        resp = await self.client.post("/v1/tasks", json=body, headers=tenant.auth)
        assert resp.status_code == 202, resp.text
        return str(resp.json()["id"])

    async def finished(self, tenant: Tenant, task_id: str) -> dict[str, Any]:
        await workflow_result(self.env, f"task-{task_id}", TaskDone)  # the API started it
        resp = await self.client.get(f"/v1/tasks/{task_id}", headers=tenant.auth)
        return dict(resp.json())

    async def content(self, tenant: Tenant, task_id: str, **params: Any) -> httpx.Response:
        return await self.client.get(
            f"/v1/tasks/{task_id}/content", headers=tenant.auth, params=params
        )


@pytest.fixture
async def api(
    resources: Resources, time_skipping_env: WorkflowEnvironment
) -> AsyncIterator[TaskApi]:
    queue = f"content-{uuid.uuid4()}"
    saved = resources.temporal, resources.settings
    resources.settings = resources.settings.model_copy(update={"task_queue": queue})
    resources.temporal = TemporalHandle(resources.settings, time_skipping_env.client)
    app = create_app(resources=resources)
    try:
        async with (
            running_worker(time_skipping_env.client, resources, queue),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client,
        ):
            yield TaskApi(client, app, time_skipping_env)
    finally:
        resources.temporal, resources.settings = saved


async def openai_tenant(resources: Resources, fake: FakeProvider) -> Tenant:
    """Video and speech models on an `openai` channel of the fake, and a funded tenant."""
    await add_media_model(resources, "vid-oa", "video")
    await add_media_model(resources, "tts-oa", "audio")
    await add_jobs_channel(resources, fake, "openai", ["vid-oa", "tts-oa"], provider="openai")
    return await make_tenant(resources, credits_micros=10_000 * 1_000_000)


async def succeeded_video(api: TaskApi, tenant: Tenant, fake: FakeProvider) -> tuple[str, str]:
    """A finished OpenAI video task: its id and the upstream's job id."""
    fake.job_polls_until_done = 1
    task_id = await api.submit(
        tenant, type="video", model="vid-oa", input={"prompt": "waves", "seconds": 4}
    )
    done = await api.finished(tenant, task_id)
    assert done["status"] == "succeeded", done
    (job_id,) = fake.video_ids()
    return task_id, job_id


def assert_nothing_upstream_in(text: str, fake: FakeProvider, job_id: str | None = None) -> None:
    assert fake.api_key not in text
    assert fake.base_url.removeprefix("http://") not in text
    if job_id is not None:
        assert job_id not in text


async def test_video_task_views_show_the_gateway_download_url_not_the_upstreams(
    api: TaskApi, resources: Resources, media_fake: FakeProvider
) -> None:
    tenant = await openai_tenant(resources, media_fake)
    task_id, job_id = await succeeded_video(api, tenant, media_fake)
    ours = f"{BASE}/v1/tasks/{task_id}/content"
    signed = f"{BASE}/v1/files/{task_id}/0?exp="

    view = await api.client.get(f"/v1/tasks/{task_id}", headers=tenant.auth)
    (url,) = view.json()["result"]["urls"]
    assert url.startswith(signed) and view.json()["result"]["content_url"] == ours
    listed = await api.client.get("/v1/tasks", headers=tenant.auth)
    assert listed.json()["data"][0]["result"]["urls"][0].startswith(signed)
    shim = await api.client.get(f"/v1/videos/{task_id}", headers=tenant.auth)
    assert shim.json()["urls"][0].startswith(signed)
    login = await api.client.post(
        "/portal/v1/auth/login", json={"email": tenant.ctx.user.email, "password": PASSWORD}
    )
    session = {"authorization": f"Bearer {login.json()['token']}"}
    portal = await api.client.get(f"/portal/v1/tasks/{task_id}", headers=session)
    assert portal.json()["result"]["urls"][0].startswith(signed)
    # The signed URL opens without any key.
    file = await api.client.get(url)
    assert (file.status_code, file.content) == (200, fake_video_bytes(job_id))
    for resp in (view, listed, shim, portal):
        assert_nothing_upstream_in(resp.text, media_fake, job_id)

    # A task whose copy never happened shows the gateway's download URL, never the upstream's.
    await forget_stored(resources, task_id)
    view = await api.client.get(f"/v1/tasks/{task_id}", headers=tenant.auth)
    assert view.json()["result"] == {"urls": [ours], "content_url": ours}
    assert_nothing_upstream_in(view.text, media_fake, job_id)


async def test_openai_video_content_is_streamed_with_the_channel_key(
    api: TaskApi, resources: Resources, media_fake: FakeProvider
) -> None:
    tenant = await openai_tenant(resources, media_fake)
    task_id, job_id = await succeeded_video(api, tenant, media_fake)

    # Copied once, with the channel's key, before the task succeeded; served from the store
    # even once the provider's copy has expired.
    (call,) = media_fake.calls(f"/v1/videos/{job_id}/content")
    assert call.headers["authorization"] == f"Bearer {media_fake.api_key}"
    media_fake.video_content_expired = True
    resp = await api.content(tenant, task_id)
    assert resp.status_code == 200, resp.text
    assert resp.content == fake_video_bytes(job_id)
    assert resp.headers["content-type"] == "video/mp4"
    assert resp.headers["content-length"] == str(VIDEO_CONTENT_BYTES)
    assert resp.headers["content-disposition"] == f'attachment; filename="{task_id}.mp4"'
    assert len(media_fake.calls(f"/v1/videos/{job_id}/content")) == 1
    assert_nothing_upstream_in(str(resp.headers), media_fake, job_id)

    # Without the stored copy, it is streamed from the provider with the channel's key.
    media_fake.video_content_expired = False
    await forget_stored(resources, task_id)
    live = await api.content(tenant, task_id)
    assert (live.status_code, live.content) == (200, fake_video_bytes(job_id))
    assert live.headers["content-length"] == str(VIDEO_CONTENT_BYTES)
    _, again = media_fake.calls(f"/v1/videos/{job_id}/content")
    assert again.headers["authorization"] == f"Bearer {media_fake.api_key}"

    # The OpenAI SDK's `videos.download_content` path serves the same bytes.
    shim = await api.client.get(f"/v1/videos/{task_id}/content", headers=tenant.auth)
    assert (shim.status_code, shim.content) == (200, fake_video_bytes(job_id))
    other = await api.client.get(
        f"/v1/videos/{task_id}/content", headers=tenant.auth, params={"variant": "thumbnail"}
    )
    assert (other.status_code, other.json()["error"]["param"]) == (400, "variant")
    beyond = await api.content(tenant, task_id, index=1)
    assert (beyond.status_code, beyond.json()["error"]["code"]) == (404, "not_found")


async def test_speech_content_is_the_stored_audio(
    api: TaskApi, resources: Resources, media_fake: FakeProvider
) -> None:
    tenant = await openai_tenant(resources, media_fake)
    text = "hello there, this is speech"
    task_id = await api.submit(
        tenant, type="audio", model="tts-oa", input={"text": text, "format": "mp3"}
    )
    done = await api.finished(tenant, task_id)
    ours = f"{BASE}/v1/tasks/{task_id}/content"
    (url,) = done["result"]["urls"]
    assert url.startswith(f"{BASE}/v1/files/{task_id}/0?") and done["result"]["content_url"] == ours
    stored = base64.b64decode(done["result"]["content_b64"])  # still there, as documented
    file = await api.client.get(url)
    assert (file.content, file.headers["content-type"]) == (stored, "audio/mpeg")

    resp = await api.content(tenant, task_id)
    assert resp.status_code == 200, resp.text
    assert resp.content == stored
    assert resp.content.startswith(b"ID3") and len(resp.content) == 5 + 32 * len(text)
    assert resp.headers["content-type"] == "audio/mpeg"
    assert resp.headers["content-length"] == str(len(stored))
    assert resp.headers["content-disposition"] == f'attachment; filename="{task_id}.mp3"'
    assert media_fake.calls("/v1/videos") == []  # nothing fetched upstream


async def test_public_url_results_are_served_from_the_store_or_redirected_to(
    api: TaskApi, resources: Resources, media_fake: FakeProvider
) -> None:
    await add_media_model(resources, "img-jobs", "image")
    await add_jobs_channel(resources, media_fake, "jobs", ["img-jobs"])
    tenant = await make_tenant(resources)
    task_id = await api.submit(
        tenant, type="image", model="img-jobs", input={"prompt": "a fox", "n": 2}
    )
    signed = (await api.finished(tenant, task_id))["result"]["urls"]
    assert [u.split("?")[0] for u in signed] == [f"{BASE}/v1/files/{task_id}/{i}" for i in (0, 1)]
    (job,) = media_fake.jobs()
    for index, url in enumerate(signed):
        provider_path = f"/files/jobs/{job.id}/{index}.png"
        stored = await api.content(tenant, task_id, index=index)
        assert stored.status_code == 200
        assert stored.content == (await api.client.get(url)).content == fake_file(provider_path)[2]
        assert stored.headers["content-type"] == "image/png"
    beyond = await api.content(tenant, task_id, index=2)
    assert beyond.status_code == 404

    # Without the stored copy: a redirect to the provider's URL.
    await forget_stored(resources, task_id)
    urls = (await api.client.get(f"/v1/tasks/{task_id}", headers=tenant.auth)).json()["result"][
        "urls"
    ]
    assert len(urls) == 2 and all(u.startswith(f"{media_fake.base_url}/files/") for u in urls)
    first = await api.content(tenant, task_id)
    assert (first.status_code, first.headers["location"]) == (307, urls[0])
    second = await api.content(tenant, task_id, index=1)
    assert (second.status_code, second.headers["location"]) == (307, urls[1])
    beyond = await api.content(tenant, task_id, index=2)
    assert beyond.status_code == 404
    assert beyond.json()["error"]["message"].endswith("has 2 result(s); there is none at index 2")


async def test_an_inline_image_is_decoded_and_sent(
    api: TaskApi, resources: Resources, media_fake: FakeProvider
) -> None:
    """OpenAI images that come back as b64_json (kept as data: URLs) are copied into the
    store like any other; without that copy, the download decodes the data: URL."""
    await add_media_model(resources, "img-oa", "image")
    await add_jobs_channel(resources, media_fake, "openai", ["img-oa"], provider="openai")
    tenant = await make_tenant(resources)
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
    body = {"data": [{"b64_json": base64.b64encode(png).decode()}], "output_format": "png"}
    media_fake.add_fault(Fault(kind="status", path="/v1/images", status=200, body=body))
    task_id = await api.submit(tenant, type="image", model="img-oa", input={"prompt": "a fox"})
    (url,) = (await api.finished(tenant, task_id))["result"]["urls"]
    assert url.startswith(f"{BASE}/v1/files/{task_id}/0?")

    for _ in ("stored", "data: URL"):
        resp = await api.content(tenant, task_id)
        assert resp.status_code == 200, resp.text
        assert (resp.content, resp.headers["content-type"]) == (png, "image/png")
        assert resp.headers["content-disposition"] == f'attachment; filename="{task_id}.png"'
        await forget_stored(resources, task_id)
    view = await api.client.get(f"/v1/tasks/{task_id}", headers=tenant.auth)
    assert view.json()["result"]["urls"][0].startswith("data:image/png")


async def test_another_orgs_task_is_not_found_and_a_key_without_the_scope_is_refused(
    api: TaskApi, resources: Resources, media_fake: FakeProvider
) -> None:
    tenant = await openai_tenant(resources, media_fake)
    task_id, _ = await succeeded_video(api, tenant, media_fake)

    stranger = await make_tenant(resources)
    theirs = await api.content(stranger, task_id)
    unknown = await api.content(stranger, str(uuid.uuid4()))
    assert theirs.status_code == unknown.status_code == 404
    assert theirs.json()["error"]["code"] == unknown.json()["error"]["code"] == "not_found"
    assert theirs.json()["error"]["message"] == unknown.json()["error"]["message"]
    # Fetched once, by the copy into the store; never for the stranger.
    assert len(media_fake.calls(f"/v1/videos/{media_fake.video_ids()[0]}/content")) == 1

    async with resources.sessions.begin() as s:
        _, chat_only = await create_key(
            s, tenant.ctx, resources.identity.pepper, name="chat", scopes=["llm:inference"]
        )
    headers = {"authorization": f"Bearer {chat_only}"}
    reads = [
        ("GET", f"/v1/tasks/{task_id}/content"),
        ("GET", f"/v1/tasks/{task_id}"),
        ("GET", "/v1/tasks"),
        ("POST", f"/v1/tasks/{task_id}/cancel"),
        ("GET", f"/v1/videos/{task_id}"),
        ("GET", f"/v1/videos/{task_id}/content"),
    ]
    for method, path in reads:
        resp = await api.client.request(method, path, headers=headers)
        assert resp.status_code == 403, (path, resp.text)
        assert resp.json()["error"]["code"] == "permission_denied"


async def test_a_task_that_has_not_succeeded_has_no_content_yet(
    api: TaskApi, resources: Resources, media_fake: FakeProvider
) -> None:
    tenant = await openai_tenant(resources, media_fake)
    media_fake.job_polls_until_done = 10_000  # time does not skip unless a test waits
    running = await api.submit(tenant, type="video", model="vid-oa", input={"prompt": "slow"})
    resp = await api.content(tenant, running)
    assert resp.status_code == 409
    error = resp.json()["error"]
    assert error["code"] == "conflict"
    assert "once it has succeeded" in error["message"]
    cancel = await api.client.post(f"/v1/tasks/{running}/cancel", headers=tenant.auth)
    assert cancel.json()["status"] == "canceled"
    assert (await api.content(tenant, running)).status_code == 409

    media_fake.job_polls_until_done = 0
    failed = await api.submit(
        tenant, type="video", model="vid-oa", input={"prompt": "x", "fake_outcome": "failed"}
    )
    assert (await api.finished(tenant, failed))["status"] == "failed"
    resp = await api.content(tenant, failed)
    assert resp.status_code == 409
    assert resp.json()["error"]["message"].endswith("failed, so it has no content to download")
    assert not any(c.path.endswith("/content") for c in media_fake.requests)


async def test_expired_upstream_content_is_not_found_with_a_clear_message(
    api: TaskApi, resources: Resources, media_fake: FakeProvider
) -> None:
    tenant = await openai_tenant(resources, media_fake)
    task_id, job_id = await succeeded_video(api, tenant, media_fake)
    await forget_stored(resources, task_id)  # (the stored copy outlives the provider's)
    media_fake.video_content_expired = True

    resp = await api.content(tenant, task_id)
    assert resp.status_code == 404
    error = resp.json()["error"]
    assert error["code"] == "not_found"
    assert "no longer has this result" in error["message"] and "expire" in error["message"]
    assert_nothing_upstream_in(resp.text, media_fake, job_id)
    assert len(media_fake.calls(f"/v1/videos/{job_id}/content")) == 2  # the copy, this one


async def test_an_upstream_failure_is_a_sanitized_502(
    api: TaskApi, resources: Resources, media_fake: FakeProvider
) -> None:
    tenant = await openai_tenant(resources, media_fake)
    task_id, job_id = await succeeded_video(api, tenant, media_fake)
    await forget_stored(resources, task_id)
    echo = {
        "error": {
            "message": f"storage failed at {media_fake.base_url}; key {media_fake.api_key}",
            "type": "server_error",
        }
    }
    media_fake.add_fault(
        Fault(kind="status", path=f"/v1/videos/{job_id}/content", status=500, body=echo)
    )

    resp = await api.content(tenant, task_id)
    assert resp.status_code == 502
    error = resp.json()["error"]
    assert (error["type"], error["code"]) == ("upstream_error", "upstream_error")
    assert error["message"] == (
        "could not download the task's result: the upstream provider failed to answer (status 500)"
    )
    assert_nothing_upstream_in(resp.text, media_fake, job_id)
    assert resp.headers["content-type"] == "application/json"

    # A provider asking us to back off: still 502, and its Retry-After reaches the client.
    media_fake.add_fault(
        Fault(kind="status", path=f"/v1/videos/{job_id}/content", status=429, retry_after="7")
    )
    limited = await api.content(tenant, task_id)
    assert (limited.status_code, limited.json()["error"]["code"]) == (502, "upstream_error")
    assert limited.headers["retry-after"] == "7"
    assert (await api.content(tenant, task_id)).content == fake_video_bytes(job_id)


# -- over a real socket: the body is streamed, and a broken upstream is never a clean end ----


async def test_the_download_streams_as_the_upstream_sends_it(
    api: TaskApi, resources: Resources, media_fake: FakeProvider
) -> None:
    tenant = await openai_tenant(resources, media_fake)
    task_id, job_id = await succeeded_video(api, tenant, media_fake)
    await forget_stored(resources, task_id)
    gate = threading.Event()
    media_fake.video_content_gate = gate  # the fake sends one chunk, then waits for this
    try:
        async with (
            live_server(api.app) as base,
            httpx.AsyncClient(base_url=base, timeout=10) as http,
            http.stream("GET", f"/v1/tasks/{task_id}/content", headers=tenant.auth) as resp,
        ):
            assert resp.status_code == 200
            assert resp.headers["content-length"] == str(VIDEO_CONTENT_BYTES)
            chunks = resp.aiter_bytes()
            # Bytes reach the client while the upstream is still holding back the rest:
            # a gateway that buffered the whole video would time out here.
            first = await asyncio.wait_for(anext(chunks), timeout=5)
            assert 0 < len(first) < VIDEO_CONTENT_BYTES and not gate.is_set()
            gate.set()
            body = first + b"".join([chunk async for chunk in chunks])
    finally:
        gate.set()
    assert body == fake_video_bytes(job_id)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_an_upstream_drop_mid_body_aborts_the_download(
    api: TaskApi, resources: Resources, media_fake: FakeProvider, chunked: bool
) -> None:
    """Never a short body that looks complete: without a Content-Length to betray it, only
    aborting the response tells the client the download broke."""
    tenant = await openai_tenant(resources, media_fake)
    task_id, job_id = await succeeded_video(api, tenant, media_fake)
    await forget_stored(resources, task_id)
    media_fake.video_content_chunked = chunked
    media_fake.add_fault(Fault(kind="drop_mid_stream", path=f"/v1/videos/{job_id}/content"))

    received = bytearray()
    async with live_server(api.app) as base, httpx.AsyncClient(base_url=base, timeout=10) as http:
        with pytest.raises(httpx.RemoteProtocolError):
            async with http.stream(
                "GET", f"/v1/tasks/{task_id}/content", headers=tenant.auth
            ) as resp:
                assert resp.status_code == 200  # the headers were out before the drop
                assert ("content-length" in resp.headers) is not chunked
                async for chunk in resp.aiter_bytes():
                    received += chunk
        # The server is fine afterwards, and the next download is whole.
        again = await http.get(f"/v1/tasks/{task_id}/content", headers=tenant.auth)
    assert len(received) < VIDEO_CONTENT_BYTES
    assert again.content == fake_video_bytes(job_id)
