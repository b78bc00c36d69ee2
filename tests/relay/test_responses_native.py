"""`POST /v1/responses` to channels that speak the Responses API goes natively: the channel
gets the client's own body (model renamed), the client gets the upstream's own Response and
typed events, and the call is billed once from the Response's usage. Channels that speak
only chat keep the translation, and a call falls back across both kinds."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from config.runtime import Resources
from tests.fakes.provider import FakeProvider, Fault
from tests.fixtures.relay import (
    add_channel,
    add_model,
    balance,
    ledger_sums_hold,
    live_server,
    make_tenant,
    pending_holds,
)
from tests.relay.test_surfaces_sdk import charges, openai_sdk

REPLY = " ".join(f"w{i}" for i in range(8))
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


@pytest.fixture
async def base(app: FastAPI) -> AsyncIterator[str]:
    async with live_server(app) as url:
        yield url


def cost(inp: int, out: int, cached: int = 0, cached_rate: int = 0) -> int:
    """Micros at 150/600 per 1M tokens (professional, balanced: x1)."""
    return inp * 150 + cached * cached_rate + out * 600


async def attempts(resources: Resources, request_id: str) -> list[tuple[Any, ...]]:
    async with resources.sessions() as s:
        rows = await s.execute(
            text("SELECT channel_id, outcome, http_status FROM request_attempts"
                 " WHERE request_id = :r ORDER BY id"),
            {"r": request_id},
        )  # fmt: skip
        return [tuple(r) for r in rows.all()]


async def test_native_json_stream_and_tool_calls_bill_once_from_upstream_usage(
    base: str, resources: Resources, fake: FakeProvider
) -> None:
    await add_model(resources, "gpt-test")
    await add_channel(resources, fake, "native", ["gpt-test"], mapping={"gpt-test": "gpt-upstream"})
    tenant = await make_tenant(resources)
    before, _ = await balance(resources, tenant.org_id)
    client = openai_sdk(base, tenant.key)

    response = await client.responses.create(
        model="gpt-test", input="hello there friend", instructions="be brief",
        include=["reasoning.encrypted_content"], truncation="auto", metadata={"k": "v"},
    )  # fmt: skip
    assert response.id.startswith("resp_")  # the upstream's own Response, not a rebuilt one
    assert response.model == "gpt-test"
    assert response.output_text == REPLY
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens) == (5, 8)
    sent = fake.calls("/v1/responses")[-1]
    assert sent.json["model"] == "gpt-upstream"
    assert sent.json["include"] == ["reasoning.encrypted_content"]  # untranslatable, kept
    assert sent.json["truncation"] == "auto" and sent.json["instructions"] == "be brief"
    assert "stream" not in sent.json and "messages" not in sent.json
    assert sent.headers["authorization"] == f"Bearer {fake.api_key}"
    assert tenant.key not in str(sent.headers)

    async with client.responses.stream(model="gpt-test", input="hello there friend") as stream:
        deltas = [e.delta async for e in stream if e.type == "response.output_text.delta"]
        final = await stream.get_final_response()
    assert "".join(deltas) == final.output_text == REPLY
    assert final.id.startswith("resp_") and final.model == "gpt-test"
    assert final.usage is not None and final.usage.output_tokens == 8
    assert fake.calls("/v1/responses")[-1].json["stream"] is True

    called = await client.responses.create(
        model="gpt-test", input="weather in Paris?", tools=[WEATHER],  # type: ignore[list-item]
    )  # fmt: skip
    call = called.output[0]
    assert call.type == "function_call" and call.name == "get_weather"
    assert call.arguments == '{"city": "Paris"}' and call.call_id.startswith("call_")
    assert fake.calls("/v1/responses")[-1].json["tools"] == [WEATHER]

    assert not fake.calls("/v1/chat/completions")
    assert await charges(resources, tenant.org_id) == (3, 3)
    after, _ = await balance(resources, tenant.org_id)
    assert before - after == cost(5, 8) + cost(3, 8) + cost(3, 6)
    await ledger_sums_hold(resources, tenant.org_id)


async def test_cached_input_is_charged_at_the_cached_rate_only_when_priced(
    base: str, resources: Resources, fake: FakeProvider
) -> None:
    await add_model(resources, "gpt-cache", cached_input_per_mtok=50)
    await add_model(resources, "gpt-plain")
    await add_channel(resources, fake, "native", ["gpt-cache", "gpt-plain"])
    tenant = await make_tenant(resources)
    client = openai_sdk(base, tenant.key)
    before, _ = await balance(resources, tenant.org_id)

    cached = await client.responses.create(
        model="gpt-cache", input="one two three four", prompt_cache_key="k"
    )
    assert cached.usage is not None and cached.usage.input_tokens_details.cached_tokens == 2
    middle, _ = await balance(resources, tenant.org_id)
    assert before - middle == cost(2, 8, cached=2, cached_rate=50)

    await client.responses.create(
        model="gpt-plain", input="one two three four", prompt_cache_key="k"
    )
    after, _ = await balance(resources, tenant.org_id)
    assert middle - after == cost(4, 8)  # no cached rate: every input token at the input rate
    await ledger_sums_hold(resources, tenant.org_id)


async def test_a_failing_native_channel_falls_back_to_a_translated_one(
    base: str, resources: Resources, fake: FakeProvider
) -> None:
    await add_model(resources, "gpt-test")
    native = await add_channel(resources, fake, "native", ["gpt-test"], priority=10)
    compat = await add_channel(
        resources, fake, "compat", ["gpt-test"], provider="openai_compatible"
    )
    tenant = await make_tenant(resources)
    client = openai_sdk(base, tenant.key)
    before, _ = await balance(resources, tenant.org_id)

    fake.add_fault(Fault(kind="status", status=503, path="/v1/responses", times=1))
    raw = await client.responses.with_raw_response.create(model="gpt-test", input="hello there")
    response = raw.parse()
    assert response.output_text == REPLY and response.model == "gpt-test"
    assert await attempts(resources, raw.headers["x-request-id"]) == [
        (native, "server", 503), (compat, "ok", 200),
    ]  # fmt: skip
    assert fake.calls("/v1/chat/completions")[-1].json["messages"] == [
        {"role": "user", "content": "hello there"}
    ]

    fake.add_fault(Fault(kind="status", status=503, path="/v1/responses", times=1))
    async with client.responses.stream(model="gpt-test", input="hello there") as stream:
        final = await stream.get_final_response()
    assert final.output_text == REPLY
    assert final.usage is not None and final.usage.output_tokens == 8
    assert len(fake.calls("/v1/responses")) == 2 and len(fake.calls("/v1/chat/completions")) == 2

    # The native channel answers again once the fault is gone: fallback was per call.
    again = await client.responses.create(model="gpt-test", input="hello there")
    assert again.id.startswith("resp_") and len(fake.calls("/v1/responses")) == 3

    assert await charges(resources, tenant.org_id) == (3, 3)
    after, _ = await balance(resources, tenant.org_id)
    assert before - after == 3 * cost(2, 8)
    await ledger_sums_hold(resources, tenant.org_id)


async def test_stored_state_only_where_every_route_speaks_responses(
    base: str, resources: Resources, fake: FakeProvider
) -> None:
    await add_model(resources, "gpt-native")
    await add_model(resources, "gpt-mixed")
    await add_channel(resources, fake, "openai", ["gpt-native", "gpt-mixed"], priority=10)
    await add_channel(
        resources, fake, "declared", ["gpt-native"], provider="openrouter",
        capabilities=["responses_api"],
    )  # fmt: skip
    await add_channel(resources, fake, "compat", ["gpt-mixed"], provider="openai_compatible")
    tenant = await make_tenant(resources)
    client = openai_sdk(base, tenant.key)

    first = await client.responses.create(model="gpt-native", input="hello there", store=True)
    assert fake.calls("/v1/responses")[-1].json["store"] is True
    second = await client.responses.create(
        model="gpt-native", input="and again", previous_response_id=first.id
    )
    assert second.previous_response_id == first.id
    assert fake.calls("/v1/responses")[-1].json["previous_response_id"] == first.id

    sent = len(fake.requests)
    with pytest.raises(openai.BadRequestError) as refused:
        await client.responses.create(
            model="gpt-mixed", input="and again", previous_response_id=first.id
        )
    assert refused.value.param == "previous_response_id"
    assert "previous_response_id" in refused.value.message
    with pytest.raises(openai.BadRequestError) as stored:
        await client.responses.create(model="gpt-mixed", input="hi", store=True)
    assert stored.value.param == "store"
    assert len(fake.requests) == sent  # refused before any upstream was called

    # Without stored state the mixed model is served (natively, by its first channel).
    ok = await client.responses.create(model="gpt-mixed", input="hi", store=False)
    assert ok.output_text == REPLY
    assert await charges(resources, tenant.org_id) == (3, 3)
    assert await pending_holds(resources) == 0
    await ledger_sums_hold(resources, tenant.org_id)


async def test_an_upstream_400_on_the_native_path_is_the_clients_after_one_request(
    base: str, resources: Resources, fake: FakeProvider
) -> None:
    await add_model(resources, "gpt-test")
    await add_model(resources, "gpt-only")
    native = await add_channel(resources, fake, "native", ["gpt-test", "gpt-only"], priority=10)
    await add_channel(resources, fake, "compat", ["gpt-test"], provider="openai_compatible")
    tenant = await make_tenant(resources)
    client = openai_sdk(base, tenant.key)
    before = await balance(resources, tenant.org_id)

    bad = {"error": {"message": "Unsupported value: 'reasoning.effort'", "code": "bad_value",
                     "type": "invalid_request_error", "param": "reasoning.effort"}}  # fmt: skip
    fake.add_fault(Fault(kind="status", status=400, path="/v1/responses", body=bad))
    with pytest.raises(openai.BadRequestError) as refused:
        await client.responses.create(
            model="gpt-test",
            input="hi",
            reasoning={"effort": "extreme"},  # type: ignore[typeddict-item]
        )
    assert refused.value.param == "reasoning.effort"
    assert refused.value.response.headers["x-should-retry"] == "false"
    assert len(fake.calls("/v1/responses")) == 1 and not fake.calls("/v1/chat/completions")

    # A previous response the upstream does not know: its own 400, named, not retried.
    with pytest.raises(openai.BadRequestError) as unknown:
        await client.responses.create(model="gpt-only", input="hi", previous_response_id="resp_x")
    assert unknown.value.param == "previous_response_id"
    assert len(fake.calls("/v1/responses")) == 2 and not fake.calls("/v1/chat/completions")

    async with resources.sessions() as s:
        failures = (
            await s.execute(
                text("SELECT consecutive_failures FROM channels WHERE id = :c"), {"c": native}
            )
        ).scalar_one()
    assert failures == 0  # the client's mistake is no mark against the channel
    assert await balance(resources, tenant.org_id) == before
    assert (await charges(resources, tenant.org_id))[0] == 0
    assert await pending_holds(resources) == 0


async def test_a_stream_dropped_after_its_first_event_is_billed_from_upstream_usage(
    base: str, resources: Resources, fake: FakeProvider
) -> None:
    await add_model(resources, "gpt-test")
    await add_channel(resources, fake, "native", ["gpt-test"])
    tenant = await make_tenant(resources)
    before, _ = await balance(resources, tenant.org_id)
    fake.add_fault(Fault(kind="slow_stream", path="/v1/responses", delay_s=0.05))

    body = {"model": "gpt-test", "input": "hello there", "stream": True}
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:  # noqa: SIM117
        async with http.stream("POST", "/v1/responses", json=body, headers=tenant.auth) as resp:
            assert resp.status_code == 200
            lines = resp.aiter_lines()
            first = await anext(lines)
            assert first == "event: response.created"
    await resources.relay.drain()

    assert await charges(resources, tenant.org_id) == (1, 1)
    after, _ = await balance(resources, tenant.org_id)
    assert before - after == cost(2, 8)  # the upstream's own usage, read after the hang-up
    async with resources.sessions() as s:
        gone = (
            await s.execute(
                text("SELECT client_disconnected FROM request_logs WHERE org_id = :o"),
                {"o": tenant.org_id},
            )
        ).scalar_one()
    assert gone is True
    await ledger_sums_hold(resources, tenant.org_id)


async def test_a_native_stream_broken_mid_way_ends_in_an_error_event_and_bills_the_output(
    base: str, resources: Resources, fake: FakeProvider
) -> None:
    await add_model(resources, "gpt-test")
    await add_channel(resources, fake, "native", ["gpt-test"], priority=10)
    await add_channel(resources, fake, "compat", ["gpt-test"], provider="openai_compatible")
    tenant = await make_tenant(resources)
    before, _ = await balance(resources, tenant.org_id)
    # created, in_progress, item added, part added, then 3 text deltas: cut there.
    fake.add_fault(Fault(kind="drop_mid_stream", path="/v1/responses", after_chunks=7))

    body = {"model": "gpt-test", "input": "hello there", "stream": True}
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        resp = await http.post("/v1/responses", json=body, headers=tenant.auth)
    assert resp.status_code == 200
    events = [json.loads(line[6:]) for line in resp.text.splitlines() if line.startswith("data: ")]
    assert [e["type"] for e in events][:3] == [
        "response.created", "response.in_progress", "response.output_item.added",
    ]  # fmt: skip
    assert events[-1]["type"] == "error" and events[-1]["code"] == "server_error"
    assert events[-1]["sequence_number"] == events[-2]["sequence_number"] + 1
    text_sent = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert text_sent == "w0 w1 w2"
    assert not fake.calls("/v1/chat/completions")  # output had begun: no fallback

    await resources.relay.drain()
    assert await charges(resources, tenant.org_id) == (1, 1)
    after, _ = await balance(resources, tenant.org_id)
    assert 0 < before - after < cost(2, 8)  # the estimate of what was produced, not the cap
    await ledger_sums_hold(resources, tenant.org_id)
