"""The affordable ceiling (DESIGN.md §3): an uncapped call is served within what the org can
afford and says so; a 402 names the amounts and the `max_tokens` that would fit."""

from __future__ import annotations

import asyncio
import uuid

import httpx
from sqlalchemy import text

from config.runtime import Resources
from domain.ledger import service as ledger
from tests.fakes.provider import FakeProvider
from tests.fixtures.relay import (
    MICROS,
    add_channel,
    add_model,
    balance,
    ledger_sums_hold,
    make_tenant,
    pending_holds,
)

HELLO = {"role": "user", "content": "hello there friend"}
CAPPED = "x-oxinf-max-tokens-capped"
# gpt-test: 150 / 600 credits per 1M tokens, max output 1,000, professional tier, balanced:
# a hold is exactly 150 x prompt + 600 x output micros. Its full hold is over 0.6 credits.
HALF_CREDIT = MICROS // 2


async def _setup(resources: Resources, fake: FakeProvider, credits_micros: int, **key: object):  # type: ignore[no-untyped-def]
    await add_model(resources, "gpt-test")
    await add_channel(resources, fake, "fake-openai", ["gpt-test"])
    return await make_tenant(resources, credits_micros=credits_micros, **key)


async def _holds(resources: Resources, org_id: uuid.UUID) -> list[tuple[int, str]]:
    async with resources.sessions() as s:
        rows = await s.execute(
            text("SELECT amount_micros, status FROM holds WHERE org_id = :o"), {"o": org_id}
        )
        return [(int(a), str(st)) for a, st in rows.all()]


def _assert_largest_fit(hold: int, tokens: int, room: int) -> None:
    """`tokens` is the largest output whose hold fits `room`, and the hold is exactly its."""
    prompt, rest = divmod(hold - 600 * tokens, 150)
    assert rest == 0 and prompt > 0
    assert hold <= room < 150 * prompt + 600 * (tokens + 1)


async def test_uncapped_call_is_served_within_what_the_org_can_afford(
    client: httpx.AsyncClient, resources: Resources, fake: FakeProvider
) -> None:
    tenant = await _setup(resources, fake, HALF_CREDIT)
    resp = await client.post(
        "/v1/chat/completions", json={"model": "gpt-test", "messages": [HELLO]}, headers=tenant.auth
    )
    assert resp.status_code == 200, resp.text
    capped = int(resp.headers[CAPPED])
    assert 16 <= capped < 1000
    (sent,) = fake.calls("/v1/chat/completions")
    assert sent.json["max_tokens"] == capped
    ((hold, status),) = await _holds(resources, tenant.org_id)
    assert status == "settled"
    _assert_largest_fit(hold, capped, HALF_CREDIT)
    bal, avail = await balance(resources, tenant.org_id)
    assert bal == avail == HALF_CREDIT - (3 * 150 + 8 * 600)
    await ledger_sums_hold(resources, tenant.org_id)

    # Once the full output is affordable, nothing is capped.
    async with resources.sessions.begin() as s:
        await ledger.credit(s, tenant.org_id, 10 * MICROS, kind="purchase", key="top-up", actor="t")
    resp = await client.post(
        "/v1/chat/completions", json={"model": "gpt-test", "messages": [HELLO]}, headers=tenant.auth
    )
    assert resp.status_code == 200, resp.text
    assert CAPPED not in resp.headers
    assert "max_tokens" not in fake.calls("/v1/chat/completions")[-1].json


async def test_streamed_call_is_capped_and_says_so(
    client: httpx.AsyncClient, resources: Resources, fake: FakeProvider
) -> None:
    tenant = await _setup(resources, fake, HALF_CREDIT)
    body = {"model": "gpt-test", "messages": [HELLO], "stream": True}
    async with client.stream("POST", "/v1/chat/completions", json=body, headers=tenant.auth) as r:
        assert r.status_code == 200
        capped = int(r.headers[CAPPED])
        assert "[DONE]" in (await r.aread()).decode()
    assert fake.calls("/v1/chat/completions")[0].json["max_tokens"] == capped
    await resources.relay.drain()
    assert await pending_holds(resources) == 0
    await ledger_sums_hold(resources, tenant.org_id)


async def test_402_when_not_even_a_minimal_answer_fits(
    client: httpx.AsyncClient, resources: Resources, fake: FakeProvider
) -> None:
    tenant = await _setup(resources, fake, 100)  # 0.0001 credits
    resp = await client.post(
        "/v1/chat/completions", json={"model": "gpt-test", "messages": [HELLO]}, headers=tenant.auth
    )
    assert resp.status_code == 402, resp.text
    error = resp.json()["error"]
    assert error["code"] == "insufficient_credits"
    assert error["available_credits"] == "0.0001"
    required = error["required_credits"]
    assert isinstance(required, str) and required.startswith("0.6")
    assert error["max_affordable_tokens"] == 0
    assert required in error["message"] and "0.0001" in error["message"]
    assert "minimal answer (16 tokens)" in error["message"]
    assert fake.calls("/v1/") == []
    assert await balance(resources, tenant.org_id) == (100, 100)
    await ledger_sums_hold(resources, tenant.org_id)


async def test_explicit_max_tokens_is_never_shrunk(
    client: httpx.AsyncClient, resources: Resources, fake: FakeProvider
) -> None:
    tenant = await _setup(resources, fake, HALF_CREDIT)
    body = {"model": "gpt-test", "messages": [HELLO], "max_tokens": 1000}
    resp = await client.post("/v1/chat/completions", json=body, headers=tenant.auth)
    assert resp.status_code == 402, resp.text
    error = resp.json()["error"]
    assert error["code"] == "insufficient_credits"
    assert error["available_credits"] == "0.5"
    fits = error["max_affordable_tokens"]
    assert 16 <= fits < 1000
    assert f"max_tokens={fits}" in error["message"]
    assert fake.calls("/v1/") == []

    # And the advice works: that max_tokens is served, uncapped.
    body["max_tokens"] = fits
    ok = await client.post("/v1/chat/completions", json=body, headers=tenant.auth)
    assert ok.status_code == 200, ok.text
    assert CAPPED not in ok.headers
    await ledger_sums_hold(resources, tenant.org_id)


async def test_key_budget_caps_and_refuses_with_its_amounts(
    client: httpx.AsyncClient, resources: Resources, fake: FakeProvider
) -> None:
    tenant = await _setup(resources, fake, 100 * MICROS, budget_micros=300_000)
    resp = await client.post(
        "/v1/chat/completions", json={"model": "gpt-test", "messages": [HELLO]}, headers=tenant.auth
    )
    assert resp.status_code == 200, resp.text
    capped = int(resp.headers[CAPPED])
    ((hold, _),) = await _holds(resources, tenant.org_id)
    _assert_largest_fit(hold, capped, 300_000)

    body = {"model": "gpt-test", "messages": [HELLO], "max_tokens": 1000}
    refused = await client.post("/v1/chat/completions", json=body, headers=tenant.auth)
    assert refused.status_code == 402
    error = refused.json()["error"]
    assert error["code"] == "api_key_budget_exhausted"
    assert error["available_credits"] == "0.29475"  # 0.3 less the first call's 5,250 micros
    assert error["max_affordable_tokens"] < capped
    await ledger_sums_hold(resources, tenant.org_id)


async def test_concurrent_uncapped_calls_never_overspend(
    client: httpx.AsyncClient, resources: Resources, fake: FakeProvider
) -> None:
    """200 calls at once on 3 credits, each wanting a 0.6-credit hold: they are capped or
    refused, never overdrawn, and the ledger adds up."""
    tenant = await _setup(resources, fake, 3 * MICROS)

    async def call() -> httpx.Response:
        return await client.post(
            "/v1/chat/completions",
            json={"model": "gpt-test", "messages": [HELLO]},
            headers=tenant.auth,
        )

    responses = await asyncio.gather(*(call() for _ in range(200)))
    statuses = {r.status_code for r in responses}
    assert statuses <= {200, 402}, {r.status_code: r.text for r in responses}
    served = [r for r in responses if r.status_code == 200]
    assert any(CAPPED in r.headers for r in served)
    await resources.relay.drain()
    assert await pending_holds(resources) == 0
    bal, avail = await balance(resources, tenant.org_id)
    assert bal == avail == 3 * MICROS - len(served) * (3 * 150 + 8 * 600)
    await ledger_sums_hold(resources, tenant.org_id)
