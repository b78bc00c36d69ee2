"""Chat `n` > 1 (issue 17): n answers, held for n times the output ceiling and billed once
from the upstream's usage, which counts every answer's tokens."""

from __future__ import annotations

import uuid

import httpx
import openai
import pytest
from sqlalchemy import text

from config.runtime import Resources
from tests.fakes.provider import FakeProvider
from tests.fixtures.relay import (
    MICROS,
    add_channel,
    add_model,
    balance,
    ledger_sums_hold,
    live_server,
    make_tenant,
    pending_holds,
)

HELLO = {"role": "user", "content": "hello there friend"}
# gpt-test: 150 / 600 credits per 1M tokens, max output 1,000, professional tier, balanced:
# a hold is 150 x prompt + 600 x output micros; the fake answers 8 tokens per choice.
ONE_ANSWER = 3 * 150 + 8 * 600
ESTIMATE = 13  # the prompt tokens the relay estimates for HELLO before the upstream counts


async def _setup(resources: Resources, fake: FakeProvider, credits_micros: int = 10 * MICROS):  # type: ignore[no-untyped-def]
    await add_model(resources, "gpt-test")
    await add_channel(resources, fake, "fake-openai", ["gpt-test"])
    return await make_tenant(resources, credits_micros=credits_micros)


async def _holds(resources: Resources, org_id: uuid.UUID) -> list[int]:
    async with resources.sessions() as s:
        rows = await s.execute(
            text("SELECT amount_micros FROM holds WHERE org_id = :o"), {"o": org_id}
        )
        return [int(a) for (a,) in rows.all()]


async def test_n_answers_are_held_for_and_billed_once(
    app: object, resources: Resources, fake: FakeProvider
) -> None:
    tenant = await _setup(resources, fake)
    async with live_server(app) as base:  # type: ignore[arg-type]
        sdk = openai.AsyncOpenAI(base_url=f"{base}/v1", api_key=tenant.key, max_retries=0)
        reply = await sdk.chat.completions.create(model="gpt-test", messages=[HELLO], n=3)
        assert [c.index for c in reply.choices] == [0, 1, 2]
        assert reply.usage is not None and reply.usage.completion_tokens == 3 * 8
        stream = await sdk.chat.completions.create(
            model="gpt-test", messages=[HELLO], n=2, stream=True,
            stream_options={"include_usage": True},
        )  # fmt: skip
        indexes = {c.index async for chunk in stream for c in chunk.choices}
        assert indexes == {0, 1}
    await resources.relay.drain()
    assert fake.calls("/v1/chat/completions")[0].json["n"] == 3
    # Held for three (then two) whole answers at the ceiling, not one.
    assert sorted(await _holds(resources, tenant.org_id)) == [
        ESTIMATE * 150 + 2 * 1000 * 600,
        ESTIMATE * 150 + 3 * 1000 * 600,
    ]
    bal, avail = await balance(resources, tenant.org_id)
    charged = (3 * 150 + 3 * 8 * 600) + (3 * 150 + 2 * 8 * 600)
    assert bal == avail == 10 * MICROS - charged
    assert await pending_holds(resources) == 0
    await ledger_sums_hold(resources, tenant.org_id)


@pytest.mark.parametrize("n", [0, 129, "2", 1.5, True])
async def test_a_bad_n_is_a_400_naming_it(
    client: httpx.AsyncClient, resources: Resources, fake: FakeProvider, n: object
) -> None:
    tenant = await _setup(resources, fake)
    resp = await client.post(
        "/v1/chat/completions",
        json={"model": "gpt-test", "messages": [HELLO], "n": n},
        headers=tenant.auth,
    )
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["param"] == "n"
    assert fake.calls("/v1/chat/completions") == []
    assert await balance(resources, tenant.org_id) == (10 * MICROS, 10 * MICROS)


async def test_n_answers_the_org_cannot_cover_are_refused_not_shortened(
    client: httpx.AsyncClient, resources: Resources, fake: FakeProvider
) -> None:
    """One answer's ceiling fits (0.7 credits > 0.6), two do not: a 402 with the amounts,
    never a silently capped max_tokens for several answers."""
    tenant = await _setup(resources, fake, credits_micros=700_000)
    one = await client.post(
        "/v1/chat/completions", json={"model": "gpt-test", "messages": [HELLO]}, headers=tenant.auth
    )
    assert one.status_code == 200, one.text
    two = await client.post(
        "/v1/chat/completions",
        json={"model": "gpt-test", "messages": [HELLO], "n": 2},
        headers=tenant.auth,
    )
    assert two.status_code == 402, two.text
    error = two.json()["error"]
    assert error["code"] == "insufficient_credits"
    assert error["required_credits"] == "1.20195"  # 13 x 150 + 2 x 1,000 x 600 micros
    assert len(fake.calls("/v1/chat/completions")) == 1
    assert await balance(resources, tenant.org_id) == (700_000 - ONE_ANSWER,) * 2
