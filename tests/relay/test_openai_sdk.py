"""The official `openai` SDK, unchanged, pointed at 0xinf."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import openai
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from config.runtime import Resources
from tests.fakes.provider import FakeProvider, Fault
from tests.fixtures.relay import add_channel, add_model, make_tenant

HELLO = {"role": "user", "content": "hello there friend"}


@pytest.fixture
async def sdk_http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as http:
        yield http


def sdk(http: httpx.AsyncClient, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url="http://testserver/v1", api_key=key, http_client=http, max_retries=0
    )


async def test_sdk_chat_stream_and_models(
    sdk_http: httpx.AsyncClient, resources: Resources, fake: FakeProvider
) -> None:
    await add_model(resources, "gpt-test")
    await add_channel(resources, fake, "sdk", ["gpt-test"])
    tenant = await make_tenant(resources)
    client = sdk(sdk_http, tenant.key)

    completion = await client.chat.completions.create(model="gpt-test", messages=[HELLO])  # type: ignore[list-item]
    assert completion.choices[0].message.content == " ".join(f"w{i}" for i in range(8))
    assert completion.usage is not None and completion.usage.completion_tokens == 8

    stream = await client.chat.completions.create(
        model="gpt-test", messages=[HELLO], stream=True,  # type: ignore[list-item]
        stream_options={"include_usage": True},
    )  # fmt: skip
    pieces, usage = [], None
    async for chunk in stream:
        if chunk.choices:
            pieces.append(chunk.choices[0].delta.content or "")
        if chunk.usage:
            usage = chunk.usage
    assert "".join(pieces).split() == [f"w{i}" for i in range(8)]
    assert usage is not None and usage.total_tokens == 11

    models = [m.id async for m in client.models.list()]
    assert models == ["gpt-test"]


async def test_sdk_surfaces_our_error_codes(
    sdk_http: httpx.AsyncClient, resources: Resources, fake: FakeProvider
) -> None:
    await add_model(resources, "gpt-test")
    await add_model(resources, "gpt-other")
    await add_channel(resources, fake, "sdk", ["gpt-test", "gpt-other"])
    tenant = await make_tenant(resources, rpm_limit=3, model_allowlist=["gpt-test"])

    with pytest.raises(openai.AuthenticationError) as e401:
        await sdk(sdk_http, "oxi_" + "0" * 64).chat.completions.create(
            model="gpt-test",
            messages=[HELLO],  # type: ignore[list-item]
        )
    assert e401.value.code == "invalid_api_key"

    client = sdk(sdk_http, tenant.key)
    with pytest.raises(openai.PermissionDeniedError) as e403:
        await client.chat.completions.create(model="gpt-other", messages=[HELLO])  # type: ignore[list-item]
    assert e403.value.code == "model_not_allowed"

    fake.add_fault(Fault(kind="status", status=503, path="/v1/chat/completions", times=None))
    with pytest.raises(openai.InternalServerError) as e503:
        await client.chat.completions.create(model="gpt-test", messages=[HELLO])  # type: ignore[list-item]
    assert e503.value.status_code == 503 and e503.value.code == "service_unavailable"
    fake.reset()

    async with resources.sessions.begin() as s:
        await s.execute(
            text("UPDATE credit_accounts SET available_micros = 0, balance_micros = 0"
                 " WHERE org_id = :o"), {"o": tenant.org_id},
        )  # fmt: skip
        await s.execute(text("DELETE FROM ledger_entries WHERE org_id = :o"), {"o": tenant.org_id})
    with pytest.raises(openai.APIStatusError) as e402:
        await client.chat.completions.create(model="gpt-test", messages=[HELLO])  # type: ignore[list-item]
    assert e402.value.status_code == 402 and e402.value.code == "insufficient_credits"

    with pytest.raises(openai.RateLimitError) as e429:
        await client.chat.completions.create(model="gpt-test", messages=[HELLO])  # type: ignore[list-item]
    assert e429.value.code == "rate_limit_exceeded"
    assert int(e429.value.response.headers["retry-after"]) >= 1
