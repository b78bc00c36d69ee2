"""Breakers, other wire formats, streaming edge cases, concurrency and shared rate limits."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import httpx
from sqlalchemy import text

from api.app import create_app
from config.runtime import Resources, build_resources
from domain.providers import estimate_prompt_tokens, estimate_text_tokens
from domain.relay.plan import RelayConfig
from domain.relay.service import Relay
from schema.db import create_engine
from tests.fakes.provider import FakeProvider, Fault
from tests.fixtures.clock import FakeClock
from tests.fixtures.conditions import eventually
from tests.fixtures.relay import (
    add_channel,
    add_model,
    balance,
    ledger_sums_hold,
    live_server,
    make_tenant,
    pending_holds,
)

HELLO = {"role": "user", "content": "hello there friend"}


async def _channel_state(resources: Resources, name: str) -> tuple[str, int]:
    async with resources.sessions() as s:
        row = (
            await s.execute(
                text("SELECT breaker_state, consecutive_failures FROM channels WHERE name = :n"),
                {"n": name},
            )
        ).one()
    return str(row[0]), int(row[1])


async def test_breaker_opens_then_half_opens_after_cooldown(
    resources: Resources, fake: FakeProvider
) -> None:
    await add_model(resources, "gpt-test")
    await add_channel(resources, fake, "flaky", ["gpt-test"])
    tenant = await make_tenant(resources)
    key = await resources.key_auth.authenticate(tenant.key)
    clock = FakeClock()
    relay = Relay(
        resources.sessions, resources.http, resources.secret_box,
        RelayConfig(breaker_threshold=2, breaker_cooldown_s=30, hold_ttl=timedelta(minutes=5),
                    clock=clock),
    )  # fmt: skip
    body = {"model": "gpt-test", "messages": [HELLO]}

    async def call(n: int) -> str:
        try:
            await relay.complete(await relay.plan(key, body, f"req_breaker{n}", None))
        except Exception as exc:
            return getattr(exc, "code", type(exc).__name__)
        return "ok"

    fake.add_fault(Fault(kind="status", status=500, path="/v1/chat/completions", times=None))
    assert [await call(i) for i in range(2)] == ["service_unavailable"] * 2
    assert await _channel_state(resources, "flaky") == ("open", 2)
    calls_when_open = len(fake.calls("/v1/chat/completions"))
    assert await call(3) == "service_unavailable"
    assert len(fake.calls("/v1/chat/completions")) == calls_when_open, "open breaker: no call"

    fake.reset()
    clock.advance(29)
    assert await call(4) == "service_unavailable"  # still cooling down: no trial yet
    assert len(fake.calls("/v1/chat/completions")) == 0
    clock.advance(2)
    assert await call(5) == "ok"  # the half-open trial succeeds and closes the breaker
    assert await _channel_state(resources, "flaky") == ("closed", 0)
    assert await pending_holds(resources) == 0


async def test_anthropic_and_gemini_channels_serve_openai_shape(
    client: httpx.AsyncClient, resources: Resources, fake: FakeProvider
) -> None:
    await add_model(resources, "claude-test", provider="anthropic")
    await add_model(resources, "gemini-test", provider="google")
    await add_channel(resources, fake, "anthropic", ["claude-test"], provider="anthropic")
    await add_channel(resources, fake, "gemini", ["gemini-test"], provider="google")
    tenant = await make_tenant(resources)
    cost = 3 * 150 + 8 * 600
    for model in ("claude-test", "gemini-test"):
        before, _ = await balance(resources, tenant.org_id)
        resp = await client.post(
            "/v1/chat/completions", json={"model": model, "messages": [HELLO]}, headers=tenant.auth
        )
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["object"] == "chat.completion" and body["model"] == model
        assert body["usage"]["prompt_tokens"] == 3 and body["usage"]["completion_tokens"] == 8
        mid, _ = await balance(resources, tenant.org_id)
        assert before - mid == cost

        stream = await client.post(
            "/v1/chat/completions",
            json={"model": model, "messages": [HELLO], "stream": True,
                  "stream_options": {"include_usage": True}},
            headers=tenant.auth,
        )  # fmt: skip
        events = [ln[6:] for ln in stream.text.splitlines() if ln.startswith("data: ")]
        assert events[-1] == "[DONE]"
        chunks = [json.loads(e) for e in events[:-1]]
        usage = [c["usage"] for c in chunks if not c["choices"]]
        assert usage and usage[-1]["completion_tokens"] == 8
        after, _ = await balance(resources, tenant.org_id)
        assert mid - after == cost
    assert fake.calls("/v1/messages")[0].json["max_tokens"] == 1000  # model's max output
    await ledger_sums_hold(resources, tenant.org_id)


async def test_client_disconnect_mid_stream_bills_real_usage(
    app: object, resources: Resources, fake: FakeProvider
) -> None:
    await add_model(resources, "gpt-long")
    await add_channel(resources, fake, "long", ["gpt-long"])
    tenant = await make_tenant(resources)
    before, _ = await balance(resources, tenant.org_id)
    fake.add_fault(Fault(kind="slow_stream", delay_s=0.01, path="/v1/chat/completions"))
    async with live_server(app) as base, httpx.AsyncClient(base_url=base) as c:  # type: ignore[arg-type]
        async with c.stream(
            "POST", "/v1/chat/completions",
            json={"model": "gpt-long", "messages": [HELLO], "stream": True},
            headers=tenant.auth,
        ) as resp:  # fmt: skip
            request_id = resp.headers["x-request-id"]
            async for line in resp.aiter_lines():
                if line.startswith("data: "):
                    break  # one chunk, then the client hangs up

        async def settled() -> bool:
            return await pending_holds(resources) == 0

        await eventually(settled, within=5, what="the disconnected call settled")
    await resources.relay.drain()
    async with resources.sessions() as s:
        log = (
            (await s.execute(text("SELECT * FROM request_logs WHERE id = :i"), {"i": request_id}))
            .mappings()
            .one()
        )
    # The fake's "long" model answers 40 words and reports usage only at the very end.
    assert (log["completion_tokens"], log["estimated"], log["client_disconnected"]) == (
        40,
        False,
        True,
    )
    after, _ = await balance(resources, tenant.org_id)
    assert before - after == 3 * 150 + 40 * 600 == log["cost_micros"]
    await ledger_sums_hold(resources, tenant.org_id)


async def test_upstream_drop_mid_stream_bills_what_was_produced(
    client: httpx.AsyncClient, resources: Resources, fake: FakeProvider
) -> None:
    await add_model(resources, "gpt-test")
    await add_channel(resources, fake, "drops", ["gpt-test"])
    tenant = await make_tenant(resources)
    before, _ = await balance(resources, tenant.org_id)
    fake.add_fault(Fault(kind="drop_mid_stream", after_chunks=4, path="/v1/chat/completions"))
    resp = await client.post(
        "/v1/chat/completions",
        json={"model": "gpt-test", "messages": [HELLO], "stream": True},
        headers=tenant.auth,
    )
    events = [ln[6:] for ln in resp.text.splitlines() if ln.startswith("data: ")]
    assert "[DONE]" not in events
    last = json.loads(events[-1])
    assert last["error"]["code"] == "upstream_error"
    produced = "".join(
        json.loads(e)["choices"][0]["delta"].get("content") or ""
        for e in events[:-1] if json.loads(e).get("choices")
    )  # fmt: skip
    async with resources.sessions() as s:
        log = (
            (
                await s.execute(
                    text("SELECT * FROM request_logs WHERE id = :i"),
                    {"i": resp.headers["x-request-id"]},
                )
            )
            .mappings()
            .one()
        )
    expected_prompt = estimate_prompt_tokens(
        {"model": "gpt-test", "messages": [HELLO], "stream": True}
    )
    assert log["estimated"] is True and log["status"] == "partial"
    assert log["completion_tokens"] == estimate_text_tokens(produced)
    assert log["prompt_tokens"] == expected_prompt
    after, _ = await balance(resources, tenant.org_id)
    assert before - after == log["cost_micros"] > 0
    assert await pending_holds(resources) == 0
    await ledger_sums_hold(resources, tenant.org_id)


async def test_concurrent_chats_never_overspend(
    client: httpx.AsyncClient, resources: Resources, fake: FakeProvider
) -> None:
    await add_model(resources, "gpt-test")
    await add_channel(resources, fake, "c", ["gpt-test"])
    cost = 3 * 150 + 8 * 600
    # Credits for about 40 holds (each hold covers the estimated prompt plus 8 output tokens).
    tenant = await make_tenant(resources, credits_micros=40 * (cost + 2_000))
    start, _ = await balance(resources, tenant.org_id)
    body = {"model": "gpt-test", "messages": [HELLO], "max_tokens": 8}

    async def one() -> int:
        resp = await client.post("/v1/chat/completions", json=body, headers=tenant.auth)
        if resp.status_code == 402:
            assert resp.json()["error"]["code"] == "insufficient_credits"
        return resp.status_code

    statuses = await asyncio.gather(*(one() for _ in range(200)))
    ok, refused = statuses.count(200), statuses.count(402)
    assert ok + refused == 200 and ok >= 40 and refused > 0
    assert len(fake.calls("/v1/chat/completions")) == ok, "a refused call reached the upstream"
    end, available = await balance(resources, tenant.org_id)
    assert start - end == ok * cost
    assert end >= 0 and available == end
    assert await pending_holds(resources) == 0
    await ledger_sums_hold(resources, tenant.org_id)


async def test_rpm_limit_holds_across_two_api_instances(
    resources: Resources, fake: FakeProvider, database_url: str
) -> None:
    await add_model(resources, "gpt-test")
    await add_channel(resources, fake, "rpm", ["gpt-test"])
    tenant = await make_tenant(resources, rpm_limit=4)
    second = build_resources(resources.settings, create_engine(database_url, pool_size=4))
    apps = [create_app(resources=resources), create_app(resources=second)]
    clients = [
        httpx.AsyncClient(transport=httpx.ASGITransport(app=a), base_url="http://t") for a in apps
    ]
    body = {"model": "gpt-test", "messages": [HELLO]}
    try:
        results = []
        for i in range(6):
            resp = await clients[i % 2].post("/v1/chat/completions", json=body, headers=tenant.auth)
            results.append(resp)
    finally:
        for c in clients:
            await c.aclose()
        await second.aclose()
    assert [r.status_code for r in results] == [200, 200, 200, 200, 429, 429]
    limited = results[4]
    assert limited.json()["error"]["code"] == "rate_limit_exceeded"
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert limited.headers["x-ratelimit-limit"] == "4"
    assert limited.headers["x-ratelimit-remaining"] == "0"
    assert results[0].headers["x-ratelimit-remaining"] == "3"
    assert len(fake.calls("/v1/chat/completions")) == 4
