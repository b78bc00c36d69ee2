"""Nightly retention deletes stored task results past their org's window: the objects, and
what the task row held of them; the ledger and the task's money stay as they were."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import text
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from config.runtime import Resources
from domain.results import repository as results_repo
from tests.billing.conftest import deps_for
from tests.domain.factories import make_org
from tests.fixtures.relay import make_tenant
from worker import build_worker
from workflows.billing_cycles import RetentionInput, RetentionReport, RetentionWorkflow

NOW = datetime(2031, 3, 15, 12, 0, tzinfo=UTC)


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def stored_task(
    resources: Resources, org: uuid.UUID, stored_at: datetime, *, n: int = 1
) -> uuid.UUID:
    """A succeeded speech-like task with `n` results in the store, stored at `stored_at`."""
    task_id = uuid.uuid4()
    audio = b"RIFF" + task_id.bytes
    result = {
        "urls": [],
        "content_type": "audio/wav",
        "content_b64": base64.b64encode(audio).decode(),
        "stored": [
            {"index": i, "content_type": "audio/wav", "bytes": len(audio)} for i in range(n)
        ],
    }
    async with resources.sessions.begin() as s:
        await s.execute(
            text(
                "INSERT INTO tasks (id, org_id, type, model, status, result, charged_micros,"
                " finished_at) VALUES (:id, :org, 'audio', 'tts', 'succeeded',"
                " CAST(:result AS jsonb), 15000000, :at)"
            ),
            {"id": task_id, "org": org, "result": json.dumps(result), "at": stored_at},
        )
        for i in range(n):
            await results_repo.record_stored(
                s, task_id=task_id, org_id=org, index=i, content_type="audio/wav", size=len(audio)
            )
        await s.execute(
            text("UPDATE task_results SET stored_at = :at WHERE task_id = :t"),
            {"at": stored_at, "t": task_id},
        )
    for i in range(n):
        await resources.results.store.put(f"tasks/{task_id}/{i}", _one(audio), "audio/wav")
    return task_id


async def _run(env: WorkflowEnvironment, queue: str) -> RetentionReport:
    return await env.client.execute_workflow(
        RetentionWorkflow.run,
        RetentionInput(now=NOW, batch_size=2, org_batch_size=2),
        id=f"retention-test-{uuid.uuid4()}",
        task_queue=queue,
    )


async def test_retention_deletes_stored_results_past_each_orgs_window(
    time_skipping_env: WorkflowEnvironment, resources: Resources
) -> None:
    tenant = await make_tenant(resources)  # 30 days by default
    short = await make_org(resources.sessions)
    async with resources.sessions.begin() as s:
        await s.execute(text("UPDATE orgs SET retention_days = 1 WHERE id = :o"), {"o": short})

    old = await stored_task(resources, tenant.org_id, NOW - timedelta(days=31), n=3)
    recent = await stored_task(resources, tenant.org_id, NOW - timedelta(days=29))
    short_old = await stored_task(resources, short, NOW - timedelta(days=2))
    short_new = await stored_task(resources, short, NOW - timedelta(hours=12))

    queue = f"retention-{uuid.uuid4()}"
    async with build_worker(
        time_skipping_env.client, deps_for(resources, resources.settings), queue
    ):
        first = await _run(time_skipping_env, queue)
        second = await _run(time_skipping_env, queue)
    assert (first.results_deleted, first.complete) == (4, True)  # in batches of 2
    assert second.results_deleted == 0

    store = resources.results.store
    for task_id, count, gone in ((old, 3, True), (short_old, 1, True), (recent, 1, False),
                                 (short_new, 1, False)):  # fmt: skip
        for i in range(count):
            assert (await store.head(f"tasks/{task_id}/{i}") is None) is gone
        async with resources.sessions() as s:
            rows = await results_repo.for_task(s, task_id)
        assert [r.state for r in rows] == ["deleted" if gone else "stored"] * count

    # The customer sees the result is gone, with the reason; the money is untouched.
    app = create_app(resources=resources)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        view = (await c.get(f"/v1/tasks/{old}", headers=tenant.auth)).json()
        assert view["status"] == "succeeded" and view["charged_micros"] == 15_000_000
        assert view["result"]["urls"] == [] and "content_b64" not in view["result"]
        assert "content_url" not in view["result"]
        content = await c.get(f"/v1/tasks/{old}/content", headers=tenant.auth)
        assert content.status_code == 404
        assert "retention" in content.json()["error"]["message"]
        kept = (await c.get(f"/v1/tasks/{recent}", headers=tenant.auth)).json()
        assert kept["result"]["urls"][0].startswith(f"http://t/v1/files/{recent}/0?")
        assert (await c.get(kept["result"]["urls"][0])).content == b"RIFF" + recent.bytes
