"""Temporal killed while tasks run and are created: new tasks get a 503 and their credits
back, running ones finish once Temporal returns, and no hold is left behind."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import pytest

from tests.chaos.conftest import Stack
from tests.fixtures.processes import wait_for
from tests.fixtures.tasks import add_jobs_channel, add_media_model

TERMINAL = {"succeeded", "failed", "canceled"}


async def _submit(client: httpx.AsyncClient, auth: dict[str, str], model: str) -> httpx.Response:
    return await client.post(
        "/v1/tasks",
        json={"type": "image", "model": model, "input": {"prompt": "a lighthouse"}},
        headers=auth,
    )


async def _states(
    client: httpx.AsyncClient, auth: dict[str, str], ids: list[str]
) -> dict[str, dict[str, Any]]:
    out = {}
    for task_id in ids:
        resp = await client.get(f"/v1/tasks/{task_id}", headers=auth)
        assert resp.status_code == 200, resp.text
        out[task_id] = resp.json()
    return out


@pytest.mark.timeout_sensitive
async def test_temporal_killed_while_tasks_run_and_are_created(chaos: Stack) -> None:
    model = f"chaos-image-{uuid.uuid4().hex[:8]}"
    await add_media_model(chaos.resources, model, "image")
    await add_jobs_channel(chaos.resources, chaos.fake, f"jobs-{model}", [model])
    tenant = await chaos.tenant(credits=10_000)
    start_balance, _ = await chaos.check_ledger(tenant.org_id)
    chaos.fake.job_polls_until_done = 3  # each task polls a few times: it runs for seconds

    async with httpx.AsyncClient(base_url=chaos.api.base_url, timeout=30) as client:
        accepted = [await _submit(client, tenant.auth, model) for _ in range(6)]
        assert [r.status_code for r in accepted] == [202] * 6, accepted[0].text
        running = [r.json()["id"] for r in accepted]

        async def some_processing() -> bool:
            states = await _states(client, tenant.auth, running)
            return sum(s["status"] == "processing" for s in states.values()) >= 3

        await wait_for(some_processing, timeout=30, what="tasks submitted upstream")

        await asyncio.to_thread(chaos.temporal.kill)
        started = time.monotonic()
        refused = await asyncio.gather(*(_submit(client, tenant.auth, model) for _ in range(3)))
        refused_in = time.monotonic() - started
        for resp in refused:
            assert resp.status_code == 503, resp.text
            assert resp.json()["error"]["code"] == "service_unavailable"
            assert "nothing was charged" in resp.json()["error"]["message"]
            assert "retry-after" in resp.headers
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"] == {"postgres": "ok", "temporal": "down"}

        chaos.temporal.start()
        await chaos.temporal.wait_ready()
        back_at = time.monotonic()

        async def all_terminal() -> bool:
            states = await _states(client, tenant.auth, running)
            return all(s["status"] in TERMINAL for s in states.values())

        finished_s = await wait_for(
            all_terminal, timeout=120, what="tasks finish after Temporal returns", interval=0.5
        )
        after = [await _submit(client, tenant.auth, model) for _ in range(2)]
        assert [r.status_code for r in after] == [202] * 2, after[0].text
        running += [r.json()["id"] for r in after]
        await wait_for(all_terminal, timeout=60, what="new tasks finish", interval=0.5)
        states = await _states(client, tenant.auth, running)

    print(
        f"\nTemporal killed with {len(accepted)} tasks running: {len(refused)} new tasks "
        f"refused with 503 in {refused_in:.1f}s; running tasks all finished "
        f"{finished_s:.1f}s after Temporal was back; statuses "
        f"{sorted(s['status'] for s in states.values())}"
    )
    assert {s["status"] for s in states.values()} == {"succeeded"}, states
    # The refused tasks exist only as failed and fully refunded; nothing of them is held.
    refused_rows = await chaos.rows(
        "SELECT status, charged_micros, refunded_micros, estimate_micros FROM tasks"
        " WHERE org_id = :o AND status <> 'succeeded'",
        o=tenant.org_id,
    )
    assert len(refused_rows) == len(refused)
    for row in refused_rows:
        assert row["status"] == "failed" and row["charged_micros"] == 0
        assert row["refunded_micros"] == row["estimate_micros"]
    assert await chaos.pending_holds(tenant.org_id) == 0
    balance, held = await chaos.check_ledger(tenant.org_id)
    charged = sum(int(s["charged_micros"]) for s in states.values())
    assert held == 0 and start_balance - balance == charged
    assert back_at > started
