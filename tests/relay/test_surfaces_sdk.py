"""The official `openai` and `anthropic` SDKs, unchanged, against 0xinf on a real socket
with the fake upstream over HTTP: embeddings, legacy completions, Responses and Anthropic
Messages are answered in the shapes the SDKs parse, and each billed call is charged
exactly once (one ledger debit, one request log)."""

from __future__ import annotations

import base64
import struct
import uuid
from collections.abc import AsyncIterator

import anthropic
import openai
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from config.runtime import Resources
from tests.fakes.provider import FakeProvider
from tests.fixtures.relay import (
    Tenant,
    add_channel,
    add_model,
    ledger_sums_hold,
    live_server,
    make_tenant,
)


@pytest.fixture
async def base(app: FastAPI) -> AsyncIterator[str]:
    async with live_server(app) as url:
        yield url


async def charges(resources: Resources, org_id: uuid.UUID) -> tuple[int, int]:
    """(ledger debits, request logs) of the org."""
    async with resources.sessions() as s:
        debits = (
            await s.execute(
                text("SELECT count(*) FROM ledger_entries WHERE org_id = :o AND kind = 'debit'"),
                {"o": org_id},
            )
        ).scalar_one()
        logs = (
            await s.execute(
                text("SELECT count(*) FROM request_logs WHERE org_id = :o"), {"o": org_id}
            )
        ).scalar_one()
    return int(debits), int(logs)


async def _world(resources: Resources, fake: FakeProvider) -> Tenant:
    await add_model(resources, "gpt-test")
    await add_model(resources, "embed-test", type="embedding", output_per_mtok=0)
    await add_channel(resources, fake, "chat", ["gpt-test"])
    await add_channel(resources, fake, "emb", ["embed-test"], types=["embedding"])
    return await make_tenant(resources)


def openai_sdk(base: str, key: str, *, max_retries: int = 0) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{base}/v1", api_key=key, max_retries=max_retries)


async def test_openai_sdk_models_embeddings_and_completions(
    base: str, resources: Resources, fake: FakeProvider
) -> None:
    tenant = await _world(resources, fake)
    client = openai_sdk(base, tenant.key)

    model = await client.models.retrieve("gpt-test")
    assert model.id == "gpt-test" and model.object == "model"
    with pytest.raises(openai.NotFoundError) as missing:
        await client.models.retrieve("no-such-model")
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError):  # a name no column could hold: not a 500
        await client.models.retrieve("a\x00b")

    # The SDK asks for base64 by default and decodes it: same numbers as the float answer.
    floats = await client.embeddings.create(
        model="embed-test", input=["one two", "three"], encoding_format="float", dimensions=3
    )
    assert [d.index for d in floats.data] == [0, 1]
    assert floats.data[0].embedding == [0.07, 0.08, 0.09]
    assert floats.usage.prompt_tokens == 3
    assert fake.calls("/v1/embeddings")[-1].json["dimensions"] == 3
    packed = await client.embeddings.with_raw_response.create(
        model="embed-test", input="one two", encoding_format="base64", dimensions=3
    )
    raw = packed.http_response.json()["data"][0]["embedding"]
    assert isinstance(raw, str)
    decoded = struct.unpack("<3f", base64.b64decode(raw))
    assert decoded == pytest.approx([0.07, 0.08, 0.09], rel=1e-6)
    default = await client.embeddings.create(model="embed-test", input="one two", dimensions=3)
    assert default.data[0].embedding == pytest.approx([0.07, 0.08, 0.09], rel=1e-6)

    completion = await client.completions.create(model="gpt-test", prompt="hello", max_tokens=5)
    assert completion.object == "text_completion"
    assert completion.choices[0].text == "w0 w1 w2 w3 w4"
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None and completion.usage.completion_tokens == 5

    stream = await client.completions.create(
        model="gpt-test", prompt="hello", stream=True, stream_options={"include_usage": True}
    )
    pieces, usage = [], None
    async for chunk in stream:
        pieces += [c.text for c in chunk.choices]
        usage = chunk.usage or usage
    assert "".join(pieces).split() == [f"w{i}" for i in range(8)]
    assert usage is not None and usage.completion_tokens == 8

    # Five billed calls (models.retrieve is not billed): five debits, five request logs.
    assert await charges(resources, tenant.org_id) == (5, 5)
    await ledger_sums_hold(resources, tenant.org_id)


async def test_openai_sdk_responses_json_and_stream(
    base: str, resources: Resources, fake: FakeProvider
) -> None:
    """Translation mode: a chat-only channel (`openai_compatible` without `responses_api`);
    native mode is `tests/relay/test_responses_native.py`."""
    await add_model(resources, "gpt-test")
    await add_channel(resources, fake, "compat", ["gpt-test"], provider="openai_compatible")
    tenant = await make_tenant(resources)
    client = openai_sdk(base, tenant.key)

    response = await client.responses.create(
        model="gpt-test", input="hello there", instructions="be brief", max_output_tokens=50
    )
    assert response.status == "completed"
    assert response.output_text == " ".join(f"w{i}" for i in range(8))
    assert response.usage is not None and response.usage.output_tokens == 8
    sent = fake.calls("/v1/chat/completions")[-1].json
    assert sent["messages"][0] == {"role": "system", "content": "be brief"}
    assert sent["max_tokens"] == 50
    assert not fake.calls("/v1/responses")

    async with client.responses.stream(model="gpt-test", input="hello there") as stream:
        deltas = [e.delta async for e in stream if e.type == "response.output_text.delta"]
        final = await stream.get_final_response()
    assert "".join(deltas) == final.output_text == " ".join(f"w{i}" for i in range(8))
    assert final.usage is not None and final.usage.output_tokens == 8

    with pytest.raises(openai.BadRequestError) as stored:
        await client.responses.create(model="gpt-test", input="hi", previous_response_id="r1")
    assert stored.value.param == "previous_response_id"

    assert await charges(resources, tenant.org_id) == (2, 2)
    await ledger_sums_hold(resources, tenant.org_id)


TOOL = {
    "name": "get_weather",
    "description": "Weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


async def test_anthropic_sdk_messages_stream_and_count_tokens(
    base: str, resources: Resources, fake: FakeProvider
) -> None:
    tenant = await _world(resources, fake)
    client = anthropic.AsyncAnthropic(base_url=base, api_key=tenant.key, max_retries=0)

    message = await client.messages.create(
        model="gpt-test",
        max_tokens=100,
        system="You are terse.",
        tools=[TOOL],  # type: ignore[list-item]
        messages=[{"role": "user", "content": "hello there friend"}],
    )
    assert message.type == "message" and message.role == "assistant"
    assert message.content[0].type == "text"
    assert message.content[0].text == " ".join(f"w{i}" for i in range(8))
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens == 8
    sent = fake.calls("/v1/chat/completions")[-1].json
    assert sent["messages"][0] == {"role": "system", "content": "You are terse."}
    assert sent["tools"][0]["function"]["name"] == "get_weather"

    # Bearer auth works too, and `anthropic-beta` flags never fail a call.
    bearer = anthropic.AsyncAnthropic(
        base_url=base, auth_token=tenant.key, max_retries=0,
        default_headers={"anthropic-beta": "some-future-beta-2099-01-01"},
    )  # fmt: skip
    async with bearer.messages.stream(
        model="gpt-test", max_tokens=100, messages=[{"role": "user", "content": "hello"}]
    ) as stream:
        text_out = "".join([t async for t in stream.text_stream])
        final = await stream.get_final_message()
    assert text_out == final.content[0].text == " ".join(f"w{i}" for i in range(8))  # type: ignore[union-attr]
    assert final.usage.output_tokens == 8 and final.usage.input_tokens > 0

    counted = await client.messages.count_tokens(
        model="gpt-test", messages=[{"role": "user", "content": "hello there friend"}]
    )
    assert counted.input_tokens > 0

    assert await charges(resources, tenant.org_id) == (2, 2)
    await ledger_sums_hold(resources, tenant.org_id)


async def test_anthropic_sdk_errors_are_in_anthropics_shape(
    base: str, resources: Resources, fake: FakeProvider
) -> None:
    tenant = await _world(resources, fake)
    hello = [{"role": "user", "content": "hi"}]
    stranger = anthropic.AsyncAnthropic(base_url=base, api_key="oxi_" + "0" * 64, max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as e401:
        await stranger.messages.create(model="gpt-test", max_tokens=10, messages=hello)  # type: ignore[arg-type]
    assert e401.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]

    client = anthropic.AsyncAnthropic(base_url=base, api_key=tenant.key, max_retries=0)
    with pytest.raises(anthropic.BadRequestError) as e400:
        await client.messages.create(model="nope", max_tokens=10, messages=hello)  # type: ignore[arg-type]
    assert e400.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    assert "unknown model" in e400.value.message

    poor = await make_tenant(resources, credits_micros=0)
    broke = anthropic.AsyncAnthropic(base_url=base, api_key=poor.key, max_retries=0)
    with pytest.raises(anthropic.APIStatusError) as e402:
        await broke.messages.create(model="gpt-test", max_tokens=10, messages=hello)  # type: ignore[arg-type]
    assert e402.value.status_code == 402
    assert e402.value.body["error"]["type"] == "billing_error"  # type: ignore[index]
    assert await charges(resources, tenant.org_id) == (0, 0)


async def test_an_embedding_the_org_cannot_afford_is_a_402_with_amounts_and_no_upstream_call(
    base: str, resources: Resources, fake: FakeProvider
) -> None:
    """Embeddings hold their input alone, so there is no output to cap: the refusal says
    what the call needed and what was available, and nothing reaches the upstream."""
    await _world(resources, fake)
    broke = await make_tenant(resources, credits_micros=0)
    before = len(fake.calls("/v1/embeddings"))
    client = openai_sdk(base, broke.key)
    with pytest.raises(openai.APIStatusError) as refused:
        await client.embeddings.create(model="embed-test", input="hello " * 200)
    assert refused.value.status_code == 402
    body = refused.value.body
    assert isinstance(body, dict)
    assert body["code"] == "insufficient_credits"
    assert body["available_credits"] == "0"
    assert body["required_credits"] not in (None, "0")
    assert "max_tokens" not in body["message"]
    assert len(fake.calls("/v1/embeddings")) == before
    assert await charges(resources, broke.org_id) == (0, 1)
