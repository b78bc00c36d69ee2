"""Developer-portal usage, request traces, tasks and catalog: exact, org-scoped, no internals."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import text

from config.runtime import Resources
from domain.usage.repository import rollup_orgs
from tests.fakes.provider import FakeProvider, Fault
from tests.fixtures.relay import add_channel, add_model, make_tenant
from tests.portal.helpers import (
    HELLO,
    channel_ids,
    leaks,
    operator_headers,
    session_headers,
)

COST_3_IN_8_OUT = 3 * 150 + 8 * 600


async def _seed_task(resources: Resources, org_id: uuid.UUID, channel_id: uuid.UUID) -> uuid.UUID:
    task_id = uuid.uuid4()
    async with resources.sessions.begin() as s:
        await s.execute(
            text(
                "INSERT INTO tasks (id, org_id, type, model, status, input, channel_id,"
                " upstream_job_id, provider, error, finished_at)"
                " VALUES (:id, :org, 'image', 'img-test', 'failed', '{}'::jsonb, :ch,"
                " 'job_upstream_1', 'jobs', CAST(:err AS jsonb), now())"
            ),
            {"id": task_id, "org": org_id, "ch": channel_id,
             "err": '{"code": "upstream_error", "message": "the provider failed"}'},
        )  # fmt: skip
    return task_id


async def test_portal_views_hide_internals_that_ops_views_show(
    client: httpx.AsyncClient, resources: Resources, fake: FakeProvider
) -> None:
    await add_model(resources, "gpt-test")
    first = await add_channel(resources, fake, "primary", ["gpt-test"])
    second = await add_channel(resources, fake, "secondary", ["gpt-test"], priority=1)
    tenant = await make_tenant(resources)
    headers = await session_headers(client, resources, tenant)
    secrets = channel_ids(first, second) | {fake.api_key}

    fake.add_fault(Fault(kind="status", status=503, path="/v1/chat/completions", times=1))
    ok = await client.post(
        "/v1/chat/completions",
        json={"model": "gpt-test", "messages": [HELLO]},
        headers={**tenant.auth, "x-client-request-id": "mine-1"},
    )
    assert ok.status_code == 200, ok.text
    fake.add_fault(Fault(kind="status", status=503, path="/v1/chat/completions", times=None))
    failed = await client.post(
        "/v1/chat/completions", json={"model": "gpt-test", "messages": [HELLO]}, headers=tenant.auth
    )
    assert failed.status_code == 503, failed.text
    task_id = await _seed_task(resources, tenant.org_id, first)
    ok_id, failed_id = ok.headers["x-request-id"], failed.headers["x-request-id"]

    bodies: dict[str, Any] = {}
    for path in (
        "/portal/v1/requests",
        f"/portal/v1/requests/{ok_id}",
        f"/portal/v1/requests/{failed_id}",
        "/portal/v1/usage/summary?group_by=model",
        "/portal/v1/usage/summary?group_by=key",
        "/portal/v1/usage/summary?group_by=day",
        "/portal/v1/models",
        "/portal/v1/setup",
        "/portal/v1/tasks",
        f"/portal/v1/tasks/{task_id}",
    ):
        resp = await client.get(path, headers=headers)
        assert resp.status_code == 200, (path, resp.text)
        bodies[path] = resp.json()
        assert leaks(bodies[path], secrets) == [], path

    trace = bodies[f"/portal/v1/requests/{ok_id}"]
    assert trace["client_request_id"] == "mine-1"
    assert trace["upstream_request_id"].startswith("req_")
    assert (trace["status"], trace["billing"], trace["error"]) == ("succeeded", "platform", None)
    assert (trace["cost_micros"], trace["cost"]) == (COST_3_IN_8_OUT, "0.00525")
    assert trace["total_tokens"] == 11
    bad = bodies[f"/portal/v1/requests/{failed_id}"]
    assert bad["status"] == "failed"
    assert bad["error"]["category"] == "provider"
    assert "503" not in bad["error"]["message"]
    listed = bodies["/portal/v1/requests"]["data"]
    assert [r["id"] for r in listed] == [failed_id, ok_id]
    total = bodies["/portal/v1/usage/summary?group_by=model"]["total"]
    assert (total["requests"], total["failed_requests"], total["cost_micros"]) == (
        2, 1, COST_3_IN_8_OUT,
    )  # fmt: skip

    # The same request through the ops view carries every internal.
    ops = await operator_headers(client, resources)
    view = (await client.get(f"/ops/v1/requests/{ok_id}", headers=ops)).json()
    attempted = [a["channel_id"] for a in view["attempts"]]
    assert sorted(attempted) == sorted([str(first), str(second)])
    assert view["log"]["channel_id"] == attempted[-1]
    assert any("cf-ray" in (a["diagnostics"] or {}) for a in view["attempts"]), view["attempts"]
    assert view["log"]["price_snapshot"] is not None
    task = (await client.get(f"/ops/v1/tasks/{task_id}", headers=ops)).json()
    assert task["task"]["channel_id"] == str(first)
    assert task["task"]["upstream_job_id"] == "job_upstream_1"


async def test_request_list_paginates_and_filters(
    client: httpx.AsyncClient, resources: Resources, fake: FakeProvider
) -> None:
    await add_model(resources, "gpt-test")
    await add_channel(resources, fake, "only", ["gpt-test"])
    tenant = await make_tenant(resources)
    headers = await session_headers(client, resources, tenant)
    ids = []
    for _ in range(3):
        resp = await client.post(
            "/v1/chat/completions",
            json={"model": "gpt-test", "messages": [HELLO]},
            headers=tenant.auth,
        )
        ids.append(resp.headers["x-request-id"])
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/portal/v1/requests", params=params, headers=headers)).json()
        seen += [r["id"] for r in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids[::-1]
    none = await client.get("/portal/v1/requests?status=failed", headers=headers)
    assert none.json()["data"] == []
    other = await client.get("/portal/v1/requests?model=gpt-other", headers=headers)
    assert other.json()["data"] == []
    bad = await client.get("/portal/v1/requests?cursor=nope", headers=headers)
    assert bad.status_code == 400


async def test_other_orgs_requests_and_tasks_are_not_found(
    client: httpx.AsyncClient, resources: Resources, fake: FakeProvider
) -> None:
    await add_model(resources, "gpt-test")
    channel = await add_channel(resources, fake, "only", ["gpt-test"])
    alice = await make_tenant(resources)
    bob = await make_tenant(resources)
    resp = await client.post(
        "/v1/chat/completions", json={"model": "gpt-test", "messages": [HELLO]}, headers=alice.auth
    )
    request_id = resp.headers["x-request-id"]
    task_id = await _seed_task(resources, alice.org_id, channel)
    bob_headers = await session_headers(client, resources, bob)
    for path in (f"/portal/v1/requests/{request_id}", f"/portal/v1/tasks/{task_id}"):
        denied = await client.get(path, headers=bob_headers)
        assert denied.status_code == 404, (path, denied.text)
        assert denied.json()["error"]["code"] == "not_found"
    assert (await client.get("/portal/v1/requests", headers=bob_headers)).json()["data"] == []
    assert (await client.get("/portal/v1/tasks", headers=bob_headers)).json()["data"] == []
    summary = (await client.get("/portal/v1/usage/summary", headers=bob_headers)).json()
    assert summary["total"]["requests"] == 0


def _month(at: datetime, delta: int) -> datetime:
    index = at.year * 12 + at.month - 1 + delta
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


async def _insert_log(
    resources: Resources, org_id: uuid.UUID, key_id: uuid.UUID | None, at: datetime, **f: Any
) -> None:
    values = {
        "id": "req_" + uuid.uuid4().hex[:24], "org": org_id, "key": key_id, "at": at,
        "model": f.get("model", "gpt-test"), "status": f.get("status", "succeeded"),
        "http": 200 if f.get("status", "succeeded") != "failed" else 503,
        "p": f.get("p", 10), "c": f.get("c", 20), "cost": f.get("cost", 12_345),
        "billing": f.get("billing", "platform"),
    }  # fmt: skip
    async with resources.sessions.begin() as s:
        await s.execute(
            text(
                "INSERT INTO request_logs (id, org_id, api_key_id, model, status, http_status,"
                " prompt_tokens, completion_tokens, cost_micros, billing, created_at)"
                " VALUES (:id, :org, :key, :model, :status, :http, :p, :c, :cost, :billing, :at)"
            ),
            values,
        )


async def test_usage_summary_is_identical_before_and_after_a_rollup(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    tenant = await make_tenant(resources)
    headers = await session_headers(client, resources, tenant)
    now = datetime.now(UTC)
    closed, previous, current = _month(now, -2), _month(now, -1), _month(now, 0)
    org, key = tenant.org_id, tenant.key_id
    await _insert_log(resources, org, key, closed + timedelta(days=3), cost=1_000_001)
    await _insert_log(resources, org, None, closed + timedelta(days=9), model="m2", billing="byok",
                      cost=0)  # fmt: skip
    await _insert_log(resources, org, key, previous - timedelta(seconds=1), status="failed",
                      p=0, c=0, cost=0)  # fmt: skip
    await _insert_log(resources, org, key, previous + timedelta(days=1), cost=7)
    await _insert_log(resources, org, key, current + timedelta(seconds=1), cost=333)
    # Another org's usage must never show up.
    stranger = await make_tenant(resources)
    await _insert_log(resources, stranger.org_id, None, closed + timedelta(days=3), cost=99)

    params = {"from": closed.isoformat(), "to": (now + timedelta(minutes=1)).isoformat()}

    async def summaries() -> dict[str, Any]:
        out = {}
        for group_by in ("none", "model", "key", "month", "day"):
            resp = await client.get(
                "/portal/v1/usage/summary", params={**params, "group_by": group_by},
                headers=headers,
            )  # fmt: skip
            assert resp.status_code == 200, resp.text
            out[group_by] = resp.json()
        return out

    before = await summaries()
    total = before["none"]["total"]
    assert (total["requests"], total["failed_requests"], total["byok_requests"]) == (5, 1, 1)
    assert (total["cost_micros"], total["cost"]) == (1_000_341, "1.000341")
    assert total["prompt_tokens"] == 40 and total["total_tokens"] == 120
    assert before["none"]["rollup_months"] == []
    assert {g["key"] for g in before["month"]["groups"]} == {
        closed.strftime("%Y-%m"), previous.strftime("%Y-%m"), current.strftime("%Y-%m"),
    }  # fmt: skip

    async with resources.sessions.begin() as s:
        await rollup_orgs(s, [org, stranger.org_id], start=closed, end=current)
    after = await summaries()
    assert after["none"]["rollup_months"] == [closed.strftime("%Y-%m"), previous.strftime("%Y-%m")]
    assert after["day"]["rollup_months"] == []  # per-day grouping always reads raw logs
    for group_by in before:
        assert after[group_by]["total"] == before[group_by]["total"], group_by
        assert after[group_by]["groups"] == before[group_by]["groups"], group_by

    # Prove the closed months really come from the rollups: with their raw rows gone (which
    # retention never does to logs, only to content) the totals still hold.
    async with resources.sessions.begin() as s:
        await s.execute(
            text("DELETE FROM request_logs WHERE org_id = :o AND created_at < :c"),
            {"o": org, "c": current},
        )
    gone = await summaries()
    for group_by in ("none", "model", "key", "month"):
        assert gone[group_by]["total"] == before[group_by]["total"], group_by
        assert gone[group_by]["groups"] == before[group_by]["groups"], group_by

    # A range that cuts a month in half reads that month raw (its rows were deleted above), so
    # only the previous month's rollup and the current month's log remain.
    partial = await client.get(
        "/portal/v1/usage/summary",
        params={"from": (closed + timedelta(days=1)).isoformat(), "to": params["to"]},
        headers=headers,
    )
    assert partial.json()["rollup_months"] == [previous.strftime("%Y-%m")]
    assert partial.json()["total"]["requests"] == 2
    bad = await client.get(
        "/portal/v1/usage/summary", params={"from": params["to"], "to": params["from"]},
        headers=headers,
    )  # fmt: skip
    assert bad.status_code == 400


async def test_catalog_and_setup(client: httpx.AsyncClient, resources: Resources) -> None:
    await add_model(resources, "gpt-test")
    await add_model(resources, "unpriced-but-listed-nowhere")
    async with resources.sessions.begin() as s:
        await s.execute(
            text("UPDATE models SET enabled = false WHERE name = 'unpriced-but-listed-nowhere'")
        )
    tenant = await make_tenant(resources, tier="starter")
    headers = await session_headers(client, resources, tenant)
    models = (await client.get("/portal/v1/models", headers=headers)).json()["data"]
    assert [m["id"] for m in models] == ["gpt-test"]
    price = models[0]["price"]
    assert (price["unit"], price["input"], price["output"]) == ("1M tokens", "150", "600")
    assert price["your_multiplier"] == "1.2"
    assert (price["your_input"], price["your_output"]) == ("180", "720")
    setup = (await client.get("/portal/v1/setup", headers=headers)).json()
    assert setup["openai_base_url"] == "http://testserver/v1"
    assert setup["models"] == ["gpt-test"]
    for snippet in setup["snippets"].values():
        assert "http://testserver/v1" in snippet and "gpt-test" in snippet
        assert "OXINF_API_KEY" in snippet
    assert (await client.get("/portal/v1/models")).status_code == 401
