"""What a chat call brings that the database stores must be storable (issue 21).

The relay hands the body to the upstream as is; only what it writes down is bounded: the
`model` (a model name: at most 80 characters, no NUL), `X-Client-Request-ID` (its column)
and, for keys that log content, the prompt and answer, which go into JSONB.
"""

from __future__ import annotations

import httpx
from sqlalchemy import text

from config.runtime import Resources
from tests.fakes.provider import FakeProvider
from tests.fixtures.relay import (
    add_channel,
    add_model,
    balance,
    ledger_sums_hold,
    make_tenant,
    pending_holds,
)


async def test_nul_in_logged_content_is_stored_escaped_and_the_call_billed(
    client: httpx.AsyncClient, resources: Resources, fake: FakeProvider
) -> None:
    """JSONB cannot hold U+0000. The call itself is fine (the upstream gets the body as
    sent), so the stored copy carries U+FFFD in its place instead of failing the settle
    after the upstream already answered."""
    await add_model(resources, "gpt-test")
    await add_channel(resources, fake, "fake-openai", ["gpt-test"])
    tenant = await make_tenant(resources, log_content=True)
    before, _ = await balance(resources, tenant.org_id)
    message = {"role": "user", "content": "hello \x00 there"}
    resp = await client.post(
        "/v1/chat/completions",
        json={"model": "gpt-test", "messages": [message]},
        headers=tenant.auth,
    )
    assert resp.status_code == 200, resp.text
    assert fake.calls("/v1/chat/completions")[0].json["messages"] == [message]
    after, _ = await balance(resources, tenant.org_id)
    assert after < before
    assert await pending_holds(resources) == 0
    await ledger_sums_hold(resources, tenant.org_id)
    async with resources.sessions() as s:
        prompt = (
            await s.execute(
                text("SELECT prompt FROM request_details WHERE request_id = :i"),
                {"i": resp.headers["x-request-id"]},
            )
        ).scalar_one()
    assert prompt["messages"] == [{"role": "user", "content": "hello \ufffd there"}]


async def test_a_model_name_no_model_could_have_is_refused_before_any_lookup(
    client: httpx.AsyncClient, resources: Resources, fake: FakeProvider
) -> None:
    tenant = await make_tenant(resources)
    before = await balance(resources, tenant.org_id)
    for model in ("gpt\x00test", "m" * 81):
        resp = await client.post(
            "/v1/chat/completions",
            json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
            headers=tenant.auth,
        )
        assert resp.status_code == 400, resp.text
        assert resp.json()["error"]["param"] == "model"
    assert await balance(resources, tenant.org_id) == before
    assert fake.calls("/v1/chat/completions") == []


async def test_a_client_request_id_longer_than_its_column_is_refused_before_billing(
    client: httpx.AsyncClient, resources: Resources, fake: FakeProvider
) -> None:
    await add_model(resources, "gpt-test")
    await add_channel(resources, fake, "fake-openai", ["gpt-test"])
    tenant = await make_tenant(resources)
    before = await balance(resources, tenant.org_id)
    resp = await client.post(
        "/v1/chat/completions",
        json={"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]},
        headers={**tenant.auth, "x-client-request-id": "r" * 201},
    )
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["param"] == "X-Client-Request-ID"
    assert await balance(resources, tenant.org_id) == before
    assert fake.calls("/v1/chat/completions") == []
    ok = await client.post(
        "/v1/chat/completions",
        json={"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]},
        headers={**tenant.auth, "x-client-request-id": "r" * 200},
    )
    assert ok.status_code == 200, ok.text
