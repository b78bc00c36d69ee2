"""Anthropic Messages to an Anthropic channel go natively: the channel gets the client's own
body (betas, `cache_control` and all), the client gets Anthropic's own answer and events,
and the call is billed once from Anthropic's usage, like any relayed call."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anthropic
import pytest
from fastapi import FastAPI

from config.runtime import Resources
from tests.fakes.provider import FakeProvider
from tests.fixtures.relay import (
    add_channel,
    add_model,
    balance,
    ledger_sums_hold,
    live_server,
    make_tenant,
)
from tests.relay.test_surfaces_sdk import charges

SYSTEM = [{"type": "text", "text": "Be terse.", "cache_control": {"type": "ephemeral"}}]
BETA = "interleaved-thinking-2025-05-14,some-future-beta-2099-01-01"


@pytest.fixture
async def base(app: FastAPI) -> AsyncIterator[str]:
    async with live_server(app) as url:
        yield url


async def test_messages_reach_anthropic_channels_natively_and_bill_once(
    base: str, resources: Resources, fake: FakeProvider
) -> None:
    await add_model(resources, "claude-test", provider="anthropic")
    await add_channel(
        resources, fake, "anthropic", ["claude-test"], provider="anthropic",
        mapping={"claude-test": "claude-upstream-name"},
    )  # fmt: skip
    tenant = await make_tenant(resources)
    before, _ = await balance(resources, tenant.org_id)
    client = anthropic.AsyncAnthropic(
        base_url=base, api_key=tenant.key, max_retries=0,
        default_headers={"anthropic-beta": BETA},
    )  # fmt: skip
    hello = [{"role": "user", "content": "hello there friend"}]

    message = await client.messages.create(
        model="claude-test", max_tokens=100, system=SYSTEM, messages=hello,  # type: ignore[arg-type]
        metadata={"user_id": "someone"},
    )  # fmt: skip
    assert message.model == "claude-test"
    assert message.id.startswith("msg_")  # Anthropic's own id: the answer was not rebuilt
    assert message.content[0].text == "w0 w1 w2 w3 w4 w5 w6 w7"  # type: ignore[union-attr]
    sent = fake.calls("/v1/messages")[-1]
    assert sent.json["system"] == SYSTEM  # cache_control kept: nothing was translated
    assert sent.json["metadata"] == {"user_id": "someone"}
    assert sent.json["model"] == "claude-upstream-name"
    assert sent.json["service_tier"] == "standard_only"
    assert sent.headers["anthropic-beta"] == BETA
    assert sent.headers["x-api-key"] == fake.api_key  # the channel's key, never the client's
    assert tenant.key not in str(sent.headers)

    async with client.messages.stream(
        model="claude-test",
        max_tokens=100,
        messages=hello,  # type: ignore[arg-type]
    ) as stream:
        text = "".join([t async for t in stream.text_stream])
        final = await stream.get_final_message()
    assert text == "w0 w1 w2 w3 w4 w5 w6 w7"
    assert final.model == "claude-test" and final.usage.output_tokens == 8
    assert fake.calls("/v1/messages")[-1].json["stream"] is True

    assert await charges(resources, tenant.org_id) == (2, 2)
    after, _ = await balance(resources, tenant.org_id)
    # input 3 words + 2 system words, 8 output, at 150/600 per 1M tokens (professional 1.0)
    assert before - after == (5 * 150 + 8 * 600) + (3 * 150 + 8 * 600)
    await ledger_sums_hold(resources, tenant.org_id)
