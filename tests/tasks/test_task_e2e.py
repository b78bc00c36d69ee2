"""Tasks end to end on the Temporal dev server, the fake upstream over HTTP, a real callback
receiver, the official SDK through the shims, and a worker killed mid-task."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from fastapi import FastAPI
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from config.runtime import Resources
from config.temporal import TemporalHandle
from domain.callbacks.secrets import get_or_create
from tests.callbacks.receiver import receiver_accepts as verify
from tests.fakes.provider import FakeProvider, fake_video_bytes
from tests.fixtures.conditions import eventually
from tests.fixtures.relay import balance, ledger_sums_hold, make_tenant, pending_holds
from tests.fixtures.tasks import (
    UNIT_PRICES,
    add_jobs_channel,
    add_media_model,
    media_tenant,
    running_worker,
)
from tests.portal.helpers import operator_headers

ROOT = Path(__file__).resolve().parents[2]


class Receiver:
    """A loopback webhook receiver that records what it was sent."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                outer.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
async def e2e(
    resources: Resources, dev_server_env: WorkflowEnvironment
) -> AsyncIterator[tuple[httpx.AsyncClient, FastAPI]]:
    queue = f"e2e-{uuid.uuid4()}"
    saved = resources.temporal, resources.settings
    resources.settings = resources.settings.model_copy(
        update={"task_queue": queue, "tenant_egress_allow_private": True, "shim_wait_s": 20.0}
    )
    resources.temporal = TemporalHandle(resources.settings, dev_server_env.client)
    app = create_app(resources=resources)
    try:
        async with (
            running_worker(
                dev_server_env.client, resources, queue, tenant_egress_allow_private=True
            ),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
        ):
            yield c, app
    finally:
        resources.temporal, resources.settings = saved


async def _until_terminal(
    client: httpx.AsyncClient, auth: dict[str, str], task_id: str, wait_s: float = 20
) -> dict[str, Any]:
    async def terminal() -> dict[str, Any] | None:
        body = (await client.get(f"/v1/tasks/{task_id}", headers=auth)).json()
        return dict(body) if body["status"] in ("succeeded", "failed", "canceled") else None

    return await eventually(terminal, within=wait_s, what=f"task {task_id} finished")


async def test_submit_poll_settle_refund_and_signed_callback(
    e2e: tuple[httpx.AsyncClient, FastAPI], resources: Resources, media_fake: FakeProvider,
    receiver: Receiver,
) -> None:  # fmt: skip
    client, _ = e2e
    tenant, start = await media_tenant(resources, media_fake, "img-e2e", "image")

    ok = await client.post(
        "/v1/tasks",
        json={"type": "image", "model": "img-e2e", "input": {"prompt": "a fox", "n": 2},
              "callback_url": receiver.url},
        headers=tenant.auth,
    )  # fmt: skip
    assert ok.status_code == 202, ok.text
    done = await _until_terminal(client, tenant.auth, ok.json()["id"])
    assert done["status"] == "succeeded" and done["units"] == 2
    assert done["credits_charged"] == "80"
    end, _ = await balance(resources, tenant.org_id)
    assert start - end == 2 * UNIT_PRICES["image"]

    bad = await client.post(
        "/v1/tasks",
        json={"type": "image", "model": "img-e2e",
              "input": {"prompt": "forbidden", "fake_outcome": "failed"}},
        headers=tenant.auth,
    )  # fmt: skip
    failed = await _until_terminal(client, tenant.auth, bad.json()["id"])
    assert failed["status"] == "failed" and failed["error"]["message"]
    assert failed["credits_refunded"] == "40" and failed["credits_charged"] == "0"
    assert await balance(resources, tenant.org_id) == (end, end)

    async def called_back() -> bool:
        return bool(receiver.received)

    await eventually(called_back, within=10, what="the callback received")
    headers, body = receiver.received[0]
    async with resources.sessions.begin() as s:
        secret = await get_or_create(s, tenant.org_id, resources.secret_box)
    assert verify(secret, headers, body)
    event = json.loads(body)
    assert event["type"] == "task.succeeded" and event["data"]["id"] == ok.json()["id"]
    assert "channel" not in body.decode() and media_fake.api_key not in body.decode()
    assert await pending_holds(resources) == 0
    await ledger_sums_hold(resources, tenant.org_id)
    await _assert_timeline_in_order(client, resources, ok.json()["id"])


async def _assert_timeline_in_order(
    client: httpx.AsyncClient, resources: Resources, task_id: str
) -> None:
    """The ops timeline of a finished task, read from live Temporal: request, hold, each
    workflow step by name, the settle, and the callback, in time order."""
    ops = await operator_headers(client, resources)

    async def with_callback() -> dict[str, Any] | None:
        body = (await client.get(f"/ops/v1/tasks/{task_id}/timeline", headers=ops)).json()
        return dict(body) if any(e["source"] == "callback" for e in body["timeline"]) else None

    # The callback attempt row lands just after the receiver answers.
    body = await eventually(with_callback, within=10, what="the callback in the timeline")
    assert body["temporal"] == {"available": True, "error": None}, body["temporal"]
    steps = [
        f"{e['event']}:{e['data'].get('step', '')}" if e["source"] == "temporal" else e["event"]
        for e in body["timeline"]
    ]
    stamps = [e["at"] for e in body["timeline"]]
    assert stamps == sorted(stamps)

    def at(name: str) -> int:
        found = [i for i, step in enumerate(steps) if step.startswith(name)]
        assert found, (name, steps)
        return found[0]

    order = [
        "task.created",
        "hold.reserved",
        "workflow_execution_started:MediaTask",
        "activity_task_scheduled:tasks.submit",
        "activity_task_completed:tasks.submit",
        "activity_task_scheduled:tasks.poll",
        "activity_task_scheduled:tasks.finalize",
        "hold.settled",
        "callback.",
    ]
    positions = [at(name) for name in order]
    assert positions == sorted(positions), list(zip(order, positions, strict=True))
    assert at("ledger.debit") > at("activity_task_scheduled:tasks.finalize")
    assert "timer_started:timer" in steps  # the poll loop waits on workflow timers
    assert all(e["temporal_url"] == body["temporal_url"] for e in body["timeline"])


async def test_idempotency_key_replays_and_reserves_once(
    e2e: tuple[httpx.AsyncClient, FastAPI], resources: Resources, media_fake: FakeProvider
) -> None:
    client, _ = e2e
    tenant, start = await media_tenant(resources, media_fake, "img-e2e", "image")
    body = {"type": "image", "model": "img-e2e", "input": {"prompt": "same"}}
    headers = {**tenant.auth, "idempotency-key": "order-17"}
    replies = await asyncio.gather(
        *(client.post("/v1/tasks", json=body, headers=headers) for _ in range(5))
    )
    ids = {r.json()["id"] for r in replies}
    assert len(ids) == 1 and all(r.status_code == 202 for r in replies)
    assert sum(r.headers.get("idempotent-replayed") == "true" for r in replies) == 4
    await _until_terminal(client, tenant.auth, ids.pop())
    end, _ = await balance(resources, tenant.org_id)
    assert start - end == UNIT_PRICES["image"]
    assert (
        len(media_fake.calls("/jobs")) >= 1
        and len([c for c in media_fake.calls("/jobs") if c.method == "POST"]) == 1
    )


@pytest.mark.parametrize(
    "url",
    ["http://example.com/hook", "https://127.0.0.1/hook", "https://10.0.0.8/x",
     "https://169.254.169.254/latest", "https://[::1]/x", "https://[::ffff:127.0.0.1]/x",
     "https://user:pw@example.com/x"],
)  # fmt: skip
async def test_unsafe_callback_urls_are_refused_at_submit(
    client: httpx.AsyncClient, resources: Resources, media_fake: FakeProvider, url: str
) -> None:
    await add_media_model(resources, "img-e2e", "image")
    await add_jobs_channel(resources, media_fake, "jobs", ["img-e2e"])
    tenant = await make_tenant(resources)
    resp = await client.post(
        "/v1/tasks",
        json={"type": "image", "model": "img-e2e", "input": {"prompt": "x"}, "callback_url": url},
        headers=tenant.auth,
    )
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["code"] == "invalid_request"
    assert await balance(resources, tenant.org_id) == (1_000_000_000, 1_000_000_000)


async def test_openai_sdk_through_the_media_shims(
    e2e: tuple[httpx.AsyncClient, FastAPI], resources: Resources, media_fake: FakeProvider
) -> None:
    _, app = e2e
    await add_media_model(resources, "img-sdk", "image")
    await add_media_model(resources, "vid-sdk", "video")
    await add_media_model(resources, "tts-sdk", "audio")
    await add_jobs_channel(resources, media_fake, "openai", ["img-sdk", "vid-sdk", "tts-sdk"],
                           provider="openai")  # fmt: skip
    tenant = await make_tenant(resources)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as http:
        sdk = openai.AsyncOpenAI(
            base_url="http://t/v1", api_key=tenant.key, http_client=http, max_retries=0
        )
        image = await sdk.images.generate(model="img-sdk", prompt="a lighthouse", n=2)
        assert image.data is not None and len(image.data) == 2
        video = await sdk.videos.create(model="vid-sdk", prompt="waves", seconds="4")
        assert video.status in ("queued", "in_progress")
        video_id = video.id

        async def video_done() -> Any:
            got = await sdk.videos.retrieve(video_id)
            return got if got.status in ("completed", "failed") else None

        video = await eventually(video_done, within=20, what="the video finished")
        assert video.status == "completed"
        # The SDK downloads with the platform key; 0xinf fetches it with the channel's.
        download = await sdk.videos.download_content(video.id)
        (job_id,) = media_fake.video_ids()
        assert download.content == fake_video_bytes(job_id)
        speech = await sdk.audio.speech.create(model="tts-sdk", voice="alloy", input="hello there")
        assert len(speech.content) > 0


async def test_worker_killed_mid_task_still_finishes_every_task(
    resources: Resources, dev_server_env: WorkflowEnvironment, media_fake: FakeProvider,
    database_url: str, tmp_path: Path,
) -> None:  # fmt: skip
    queue = f"kill-{uuid.uuid4()}"
    saved = resources.temporal, resources.settings
    resources.settings = resources.settings.model_copy(update={"task_queue": queue})
    resources.temporal = TemporalHandle(resources.settings, dev_server_env.client)
    app = create_app(resources=resources)
    tenant, start = await media_tenant(
        resources, media_fake, "vid-kill", "video", credits_micros=10_000 * 1_000_000
    )
    media_fake.job_polls_until_done = 4  # a few seconds of polling per task
    env = {k: v for k, v in os.environ.items() if not k.startswith("OXINF_")} | {
        "OXINF_ENV": "test",
        "OXINF_DATA_DIR": str(tmp_path),
        "OXINF_DATABASE_URL": database_url,
        "OXINF_TEMPORAL_ADDRESS": dev_server_env.client.service_client.config.target_host,
        "OXINF_TASK_QUEUE": queue,
        "OXINF_HMAC_PEPPER": resources.identity.pepper,
        "OXINF_ENCRYPTION_KEYS": ",".join(resources.settings.encryption_key_list),
        "OXINF_LOG_LEVEL": "WARNING",
    }

    def spawn() -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "cli", "worker"], env=env, cwd=ROOT)

    worker = spawn()
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as c:
            ids = []
            for i in range(6):
                video = {"prompt": f"v{i}", "seconds": 2}
                resp = await c.post(
                    "/v1/tasks",
                    json={"type": "video", "model": "vid-kill", "input": video},
                    headers=tenant.auth,
                )
                assert resp.status_code == 202, resp.text
                ids.append(resp.json()["id"])

            async def some_processing() -> bool:
                statuses = [
                    (await c.get(f"/v1/tasks/{t}", headers=tenant.auth)).json()["status"]
                    for t in ids
                ]
                return statuses.count("processing") >= 3

            await eventually(some_processing, within=30, what="three tasks processing upstream")
            worker.send_signal(signal.SIGKILL)
            worker.wait(timeout=10)
            worker = spawn()
            # Temporal reassigns the dead worker's work after its timeouts (workflow tasks
            # ~10 s, the short poll activity 20 s), so allow for those.
            finals = [await _until_terminal(c, tenant.auth, t, wait_s=90) for t in ids]
    finally:
        worker.terminate()
        worker.wait(timeout=20)
        resources.temporal, resources.settings = saved
    assert [f["status"] for f in finals] == ["succeeded"] * 6
    end, available = await balance(resources, tenant.org_id)
    assert start - end == 6 * 2 * UNIT_PRICES["video"] and available == end
    assert await pending_holds(resources) == 0
    await ledger_sums_hold(resources, tenant.org_id)
