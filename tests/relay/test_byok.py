"""BYOK routing: the caller's own provider key first, zero credits, platform fallback only
when the org opted in, and the secret never in logs or errors."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest
from sqlalchemy import text

from config.runtime import Resources
from domain.relay.service import Relay
from tests.fakes.provider import FakeProvider
from tests.fixtures.relay import add_channel, add_model, balance, make_tenant, pending_holds

HELLO = {"role": "user", "content": "hello there friend"}
BYOK_KEY = "sk-or-v1-" + "b" * 64  # the fake only accepts its own key, see `fake_byok`


@pytest.fixture
async def byok_relay(resources: Resources, fake: FakeProvider) -> AsyncIterator[Relay]:
    """Point the providers' public base URLs at the fake upstream for these tests."""
    original = resources.relay
    urls = {**original.cfg.provider_base_urls, "openrouter": fake.base_url + "/v1",
            "openai": fake.base_url + "/v1", "anthropic": fake.base_url}  # fmt: skip
    resources.relay = Relay(
        resources.sessions, resources.http, resources.secret_box,
        # A long plan cache: BYOK changes through the API must still apply at once.
        replace(original.cfg, provider_base_urls=urls, plan_cache_ttl_s=60.0),
    )  # fmt: skip
    yield resources.relay
    await resources.relay.aclose()
    resources.relay = original


async def _put_byok(
    client: httpx.AsyncClient, headers: dict[str, str], provider: str, key: str
) -> None:
    resp = await client.put(
        "/portal/v1/byok", json={"provider": provider, "api_key": key}, headers=headers
    )
    assert resp.status_code in (200, 201), resp.text


async def _portal_headers(
    client: httpx.AsyncClient, resources: Resources, email: str
) -> dict[str, str]:
    login = await client.post(
        "/portal/v1/auth/login", json={"email": email, "password": "correct-horse-battery-9"}
    )
    return {"authorization": f"Bearer {login.json()['token']}"}


async def _email(resources: Resources, user_id: object) -> str:
    async with resources.sessions() as s:
        return str(
            (
                await s.execute(text("SELECT email FROM users WHERE id = :u"), {"u": user_id})
            ).scalar()
        )


async def test_byok_is_free_says_so_and_falls_back_only_when_disabled(
    client: httpx.AsyncClient, resources: Resources, fake: FakeProvider, byok_relay: Relay,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    caplog.set_level(logging.DEBUG)
    fake_key = fake.api_key  # the fake upstream accepts exactly this key
    await add_model(resources, "gpt-test")
    await add_channel(resources, fake, "platform", ["gpt-test"], secret=fake_key)
    tenant = await make_tenant(resources)
    portal = await _portal_headers(client, resources, await _email(resources, tenant.user_id))
    await _put_byok(client, portal, "openai", fake_key)
    before = await balance(resources, tenant.org_id)

    resp = await client.post(
        "/v1/chat/completions", json={"model": "gpt-test", "messages": [HELLO]}, headers=tenant.auth
    )
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-oxinf-billing"] == "byok"
    assert await balance(resources, tenant.org_id) == before
    async with resources.sessions() as s:
        log = (
            await s.execute(
                text(
                    "SELECT billing, cost_micros, list_cost_micros FROM request_logs WHERE id = :i"
                ),
                {"i": resp.headers["x-request-id"]},
            )
        ).one()
    assert (log[0], log[1], log[2]) == ("byok", 0, 3 * 150 + 8 * 600)

    off = await client.patch("/portal/v1/byok/openai", json={"enabled": False}, headers=portal)
    assert off.status_code == 200
    platform = await client.post(
        "/v1/chat/completions", json={"model": "gpt-test", "messages": [HELLO]}, headers=tenant.auth
    )
    assert platform.headers["x-oxinf-billing"] == "platform"
    after, _ = await balance(resources, tenant.org_id)
    assert before[0] - after == 3 * 150 + 8 * 600
    assert fake_key not in caplog.text


async def test_openrouter_byok_serves_any_model(
    client: httpx.AsyncClient, resources: Resources, fake: FakeProvider, byok_relay: Relay
) -> None:
    await add_model(resources, "claude-test", provider="anthropic")
    tenant = await make_tenant(resources)
    portal = await _portal_headers(client, resources, await _email(resources, tenant.user_id))
    await _put_byok(client, portal, "openrouter", "sk-or-v1-" + "f" * 64)
    resp = await client.post(
        "/v1/chat/completions",
        json={"model": "claude-test", "messages": [HELLO]},
        headers=tenant.auth,
    )
    # The fake rejects the unknown key (401): OpenRouter was tried, with its headers.
    sent = fake.calls("/v1/chat/completions")
    assert len(sent) == 1
    assert sent[0].headers["authorization"] == "Bearer sk-or-v1-" + "f" * 64
    assert "http-referer" in sent[0].headers and "x-title" in sent[0].headers
    assert resp.status_code == 503
    assert resp.headers["x-oxinf-billing"] == "byok"


async def test_failing_byok_falls_back_to_platform_only_when_opted_in(
    client: httpx.AsyncClient, resources: Resources, fake: FakeProvider, byok_relay: Relay,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    caplog.set_level(logging.DEBUG)
    await add_model(resources, "gpt-test")
    await add_channel(resources, fake, "platform", ["gpt-test"])
    tenant = await make_tenant(resources)
    portal = await _portal_headers(client, resources, await _email(resources, tenant.user_id))
    await _put_byok(client, portal, "openai", BYOK_KEY.replace("sk-or-v1-", "sk-"))
    body = {"model": "gpt-test", "messages": [HELLO]}

    refused = await client.post("/v1/chat/completions", json=body, headers=tenant.auth)
    assert refused.status_code == 503
    assert refused.headers["x-oxinf-billing"] == "byok"
    assert "sk-bbbb" not in refused.text

    async with resources.sessions.begin() as s:
        await s.execute(
            text("UPDATE orgs SET byok_fallback = true WHERE id = :o"), {"o": tenant.org_id}
        )
    byok_relay.forget_org(tenant.org_id)  # a direct SQL change: drop this replica's memo
    before, _ = await balance(resources, tenant.org_id)
    ok = await client.post("/v1/chat/completions", json=body, headers=tenant.auth)
    assert ok.status_code == 200, ok.text
    assert ok.headers["x-oxinf-billing"] == "platform"
    after, _ = await balance(resources, tenant.org_id)
    assert before - after == 3 * 150 + 8 * 600
    assert await pending_holds(resources) == 0
    assert BYOK_KEY.replace("sk-or-v1-", "sk-") not in caplog.text
    async with resources.sessions() as s:
        errors = (
            await s.execute(
                text("SELECT coalesce(string_agg(error, ' '), '') FROM request_attempts")
            )
        ).scalar()
    assert "sk-bbbb" not in str(errors)
