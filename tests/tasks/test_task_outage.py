"""Temporal out of reach when a task is created: 503 with its credits back, never a paid
task that does not start (README "Outages")."""

from __future__ import annotations

import time

import httpx
from sqlalchemy import text

from config.runtime import Resources
from tests.fakes.provider import FakeProvider
from tests.fixtures.relay import balance, ledger_sums_hold, pending_holds
from tests.fixtures.tasks import media_tenant


async def test_task_created_while_temporal_is_down_is_refused_and_refunded(
    client: httpx.AsyncClient, resources: Resources, media_fake: FakeProvider
) -> None:
    # The shared test settings point Temporal at a port where nothing listens.
    tenant, start = await media_tenant(resources, media_fake, "img-outage", "image")
    started = time.monotonic()
    resp = await client.post(
        "/v1/tasks",
        json={"type": "image", "model": "img-outage", "input": {"prompt": "a lighthouse"}},
        headers=tenant.auth,
    )
    assert time.monotonic() - started < resources.settings.temporal_timeout_s + 2
    assert resp.status_code == 503, resp.text
    error = resp.json()["error"]
    assert error["code"] == "service_unavailable"
    assert "nothing was charged" in error["message"]
    assert resp.headers["retry-after"] == "2"
    assert media_fake.calls("/") == [], "nothing may be sent upstream"

    async with resources.sessions() as s:
        row = (
            (
                await s.execute(
                    text(
                        "SELECT status, charged_micros, refunded_micros, estimate_micros, error"
                        " FROM tasks WHERE org_id = :o"
                    ),
                    {"o": tenant.org_id},
                )
            )
            .mappings()
            .one()
        )
    assert row["status"] == "failed" and row["charged_micros"] == 0
    assert row["refunded_micros"] == row["estimate_micros"] > 0
    assert row["error"]["code"] == "service_unavailable"
    assert await balance(resources, tenant.org_id) == (start, start)
    assert await pending_holds(resources) == 0
    await ledger_sums_hold(resources, tenant.org_id)
