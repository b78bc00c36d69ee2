"""Ops console: operator-only, full internals, one ordered timeline; /metrics parses."""

from __future__ import annotations

import re
import uuid

import httpx
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import text

from config.runtime import Resources
from tests.fakes.provider import FakeProvider, Fault
from tests.fixtures.relay import add_channel, add_model, make_tenant
from tests.portal.helpers import HELLO, operator_headers, session_headers


async def _billed_call(
    client: httpx.AsyncClient, resources: Resources, fake: FakeProvider
) -> tuple[str, uuid.UUID, dict[str, str]]:
    await add_model(resources, "gpt-test")
    channel = await add_channel(resources, fake, "only", ["gpt-test"])
    tenant = await make_tenant(resources)
    resp = await client.post(
        "/v1/chat/completions", json={"model": "gpt-test", "messages": [HELLO]}, headers=tenant.auth
    )
    assert resp.status_code == 200, resp.text
    return resp.headers["x-request-id"], channel, await session_headers(client, resources, tenant)


async def test_every_ops_route_is_operator_only(
    app: FastAPI, client: httpx.AsyncClient, resources: Resources, fake: FakeProvider
) -> None:
    request_id, _, developer = await _billed_call(client, resources, fake)
    paths = [p for p in app.openapi()["paths"] if p.startswith("/ops/")]
    assert len(paths) >= 5
    for template in paths:
        path = template.replace("{request_id}", request_id).replace("{task_id}", str(uuid.uuid4()))
        for headers in (developer, {}):
            resp = await client.get(path, headers=headers)
            assert resp.status_code == (403 if headers else 401), (path, resp.text)
    ops = await operator_headers(client, resources)
    assert (await client.get(f"/ops/v1/requests/{request_id}", headers=ops)).status_code == 200
    assert (await client.get("/ops/v1/requests/req_nope", headers=ops)).status_code == 404


async def test_request_timeline_is_time_ordered(
    client: httpx.AsyncClient, resources: Resources, fake: FakeProvider
) -> None:
    request_id, channel, _ = await _billed_call(client, resources, fake)
    ops = await operator_headers(client, resources)
    body = (await client.get(f"/ops/v1/requests/{request_id}/timeline", headers=ops)).json()
    events = [e["event"] for e in body["timeline"]]
    assert {
        "request.succeeded",
        "attempt.ok",
        "hold.reserved",
        "hold.settled",
        "ledger.debit",
    } <= set(events)
    stamps = [e["at"] for e in body["timeline"]]
    assert stamps == sorted(stamps)
    assert events.index("hold.reserved") < events.index("hold.settled")
    assert events.index("hold.reserved") < events.index("ledger.debit")
    attempt = next(e for e in body["timeline"] if e["source"] == "attempt")
    assert attempt["data"]["channel_id"] == str(channel)
    view = (await client.get(f"/ops/v1/requests/{request_id}", headers=ops)).json()
    assert [e["kind"] for e in view["ledger_entries"]] == ["debit"]
    assert view["holds"][0]["status"] == "settled"


async def test_task_timeline_marks_temporal_unavailable(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    """The test settings point Temporal at a closed port: the DB half must still render."""
    tenant = await make_tenant(resources)
    task_id = uuid.uuid4()
    async with resources.sessions.begin() as s:
        await s.execute(
            text("INSERT INTO tasks (id, org_id, type, model, input, workflow_id)"
                 " VALUES (:id, :o, 'image', 'img', '{}'::jsonb, :w)"),
            {"id": task_id, "o": tenant.org_id, "w": f"task-{task_id}"},
        )  # fmt: skip
    ops = await operator_headers(client, resources)
    for path in (f"/ops/v1/tasks/{task_id}/timeline", f"/ops/v1/requests/{task_id}/timeline"):
        body = (await client.get(path, headers=ops)).json()
        assert body["temporal"]["available"] is False and body["temporal"]["error"]
        assert body["temporal_url"].endswith(f"/namespaces/default/workflows/task-{task_id}")
        assert body["timeline"][0]["event"] == "task.created"
        assert all(e["temporal_url"] == body["temporal_url"] for e in body["timeline"])


async def test_channel_health(
    client: httpx.AsyncClient, resources: Resources, fake: FakeProvider
) -> None:
    _, channel, _ = await _billed_call(client, resources, fake)
    fake.add_fault(Fault(kind="status", status=503, path="/v1/chat/completions", times=1))
    tenant = await make_tenant(resources)
    await client.post(
        "/v1/chat/completions", json={"model": "gpt-test", "messages": [HELLO]}, headers=tenant.auth
    )
    ops = await operator_headers(client, resources)
    data = (await client.get("/ops/v1/channels/health", headers=ops)).json()["data"]
    row = next(r for r in data if r["id"] == str(channel))
    assert row["breaker_state"] == "closed"
    assert row["outcomes"]["ok"] >= 1 and row["outcomes"]["server"] == 1
    assert row["attempts"] == sum(row["outcomes"].values())
    assert isinstance(row["p50_latency_ms"], int)


SAMPLE = re.compile(
    r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_]+="([^"\\]|\\.)*",?)*\})? '
    r"([-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?|[-+]?Inf|NaN)$"
)


async def test_metrics_is_prometheus_text(
    client: httpx.AsyncClient, resources: Resources, fake: FakeProvider
) -> None:
    await _billed_call(client, resources, fake)
    resp = await client.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    lines = [ln for ln in resp.text.splitlines() if ln and not ln.startswith("#")]
    assert lines
    for line in lines:
        assert SAMPLE.match(line), line
    names = {ln.split("{")[0].split(" ")[0] for ln in lines}
    assert {"oxinf_http_requests_total", "oxinf_http_request_duration_seconds_bucket",
            "oxinf_pending_holds", "oxinf_credit_balance_micros"} <= names  # fmt: skip
    # prometheus-client writes label names sorted
    assert 'code="200",method="POST",route="/v1/chat/completions"' in resp.text


async def test_metrics_needs_the_scrape_token_when_one_is_set(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    saved = resources.settings
    resources.settings = saved.model_copy(update={"metrics_token": SecretStr("scrape-me-1234")})
    try:
        for headers in ({}, {"authorization": "Bearer scrape-me-12345"}):
            resp = await client.get("/metrics", headers=headers)
            assert resp.status_code == 401, resp.text
            assert resp.json()["error"]["code"] == "invalid_api_key"
        ok = await client.get("/metrics", headers={"authorization": "Bearer scrape-me-1234"})
        assert ok.status_code == 200 and "oxinf_http_requests_total" in ok.text
        # Production without a token does not publish metrics at all.
        for token in (None, SecretStr("")):  # an empty token counts as none
            resources.settings = saved.model_copy(
                update={"env": "production", "metrics_token": token}
            )
            assert (await client.get("/metrics")).status_code == 404
    finally:
        resources.settings = saved
