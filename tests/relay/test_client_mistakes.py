"""An upstream's 400 caused by the request is the client's to fix (DESIGN.md §5): the SDK
gets `BadRequestError` with the upstream's `param`, after exactly one upstream request, and
no channel's breaker counts it. Unknown routes answer as OpenAI's do."""

from __future__ import annotations

from collections.abc import AsyncIterator

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

HELLO = {"role": "user", "content": "hello there friend"}
UNKNOWN_PARAM = {
    "error": {
        "message": "Unrecognized request argument supplied: frobnicate",
        "type": "invalid_request_error",
        "param": "frobnicate",
        "code": None,
    }
}


@pytest.fixture
async def base(app: FastAPI) -> AsyncIterator[str]:
    async with live_server(app) as url:
        yield url


async def _failures(resources: Resources) -> list[tuple[int, str]]:
    async with resources.sessions() as s:
        rows = await s.execute(
            text("SELECT consecutive_failures, breaker_state FROM channels ORDER BY name")
        )
        return [(int(n), str(state)) for n, state in rows]


@pytest.mark.parametrize("stream", [False, True])
async def test_an_upstream_400_reaches_the_sdk_as_bad_request_after_one_upstream_call(
    base: str, resources: Resources, fake: FakeProvider, stream: bool
) -> None:
    await add_model(resources, "gpt-test")
    await add_channel(resources, fake, "a", ["gpt-test"], priority=2)
    await add_channel(resources, fake, "b", ["gpt-test"], priority=1)
    tenant = await make_tenant(resources)
    before = await balance(resources, tenant.org_id)
    fake.add_fault(
        Fault(kind="status", status=400, path="/v1/chat/completions", times=None,
              body=UNKNOWN_PARAM)
    )  # fmt: skip
    # The SDK's own retries are on, as users have them: none may happen.
    client = openai.AsyncOpenAI(base_url=f"{base}/v1", api_key=tenant.key, max_retries=2)
    with pytest.raises(openai.BadRequestError) as refused:
        await client.chat.completions.create(
            model="gpt-test", messages=[HELLO], stream=stream,  # type: ignore[list-item]
            extra_body={"frobnicate": True},
        )  # fmt: skip
    assert refused.value.param == "frobnicate"
    assert refused.value.code == "invalid_request"
    assert "frobnicate" in refused.value.message
    assert refused.value.response.headers["x-should-retry"] == "false"
    assert len(fake.calls("/v1/chat/completions")) == 1  # no fallback, no retry
    assert await _failures(resources) == [(0, "closed"), (0, "closed")]
    assert await balance(resources, tenant.org_id) == before  # nothing charged
    assert await pending_holds(resources) == 0
    await ledger_sums_hold(resources, tenant.org_id)
    async with resources.sessions() as s:
        logged = (
            await s.execute(
                text("SELECT http_status, error_code FROM request_logs WHERE org_id = :o"),
                {"o": tenant.org_id},
            )
        ).all()
    assert [tuple(r) for r in logged] == [(400, "invalid_request")]


async def test_unknown_routes_answer_like_openai(client: httpx.AsyncClient) -> None:
    resp = await client.post("/v1/no/such/thing", json={})
    assert resp.status_code == 404
    error = resp.json()["error"]
    assert error["message"] == "Invalid URL (POST /v1/no/such/thing)"
    assert error["type"] == "invalid_request_error"
