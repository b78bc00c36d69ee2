"""A tenant's BYOK base URL is tenant-controlled egress: it must never reach loopback,
private or metadata addresses, whether stored before the policy existed, spelled as a number
or hidden behind a DNS name, and the connection goes to the address that was checked."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from config.runtime import Resources, build_tenant_http_client
from domain.byok import repository as byok_repo
from domain.egress.pinning import EgressRefused
from domain.egress.policy import EgressPolicy
from domain.providers import Upstream, adapter_for
from domain.providers.aiohttp_transport import UpstreamClient
from domain.relay.service import Relay
from tests.callbacks.receiver import Receiver, Reply, make_cert
from tests.egress.fake_dns import FakeDns
from tests.fakes.provider import FakeProvider
from tests.fixtures.relay import (
    add_channel,
    add_model,
    balance,
    ledger_sums_hold,
    make_tenant,
    pending_holds,
)
from tests.relay.test_byok import _email, _portal_headers

HELLO = {"role": "user", "content": "hello there friend"}
MODEL = "tenant-llm"
ONPREM = "ollama.corp.example"


@pytest.fixture
async def tenant_relay(resources: Resources) -> AsyncIterator[Relay]:
    """The app's relay with a tenant client that trusts one named on-prem host."""
    original = resources.relay
    tenant_http = build_tenant_http_client(EgressPolicy.of([ONPREM]))
    resources.relay = Relay(
        resources.sessions, resources.http, resources.secret_box, original.cfg,
        tenant_http=tenant_http,
    )  # fmt: skip
    yield resources.relay
    await resources.relay.aclose()
    await tenant_http.aclose()
    resources.relay = original


async def _store_unchecked(
    resources: Resources, org_id: uuid.UUID, base_url: str, key: str, provider: str
) -> None:
    """A key saved before the policy existed: straight into its table, no validation."""
    async with resources.sessions.begin() as s:
        await byok_repo.upsert(
            s, org_id, provider, label=None, base_url=base_url,
            secret_ciphertext=resources.secret_box.encrypt(key), key_hint="…", enabled=True,
        )  # fmt: skip


async def _fallback(resources: Resources, org_id: uuid.UUID, on: bool) -> None:
    async with resources.sessions.begin() as s:
        await s.execute(
            text("UPDATE orgs SET byok_fallback = :b WHERE id = :o"), {"b": on, "o": org_id}
        )


@pytest.mark.parametrize(
    "base_url",
    [
        "http://127.0.0.1:{port}/v1",
        "http://2130706433:{port}/v1",
        "http://0x7f.1:{port}/v1",
        "http://[::ffff:127.0.0.1]:{port}/v1",
        "http://localhost:{port}/v1",
        "http://127.0.0.1:{port}/v1?",
        "http://169.254.169.254/latest/meta-data?",
    ],
)
async def test_a_stored_internal_base_url_is_refused_at_send_time_and_moves_no_money(
    client: httpx.AsyncClient, resources: Resources, fake: FakeProvider,
    tenant_relay: Relay, base_url: str,
) -> None:  # fmt: skip
    port = fake.base_url.rsplit(":", 1)[1]
    await add_model(resources, MODEL, provider="openai_compatible")
    tenant = await make_tenant(resources)
    await _store_unchecked(
        resources, tenant.org_id, base_url.format(port=port), fake.api_key, "openai_compatible"
    )
    before = await balance(resources, tenant.org_id)

    for stream in (False, True):
        resp = await client.post(
            "/v1/chat/completions",
            json={"model": MODEL, "messages": [HELLO], "stream": stream},
            headers=tenant.auth,
        )
        # The org's own setting is at fault, not a channel: a 4xx the SDK does not retry.
        assert resp.status_code == 400, resp.text
        error = resp.json()["error"]
        assert error["code"] == "invalid_request"
        assert "egress policy" in error["message"]
        assert resp.headers["x-should-retry"] == "false"
        assert resp.headers["x-oxinf-billing"] == "byok"

    assert fake.requests == []  # nothing ever left for the internal address
    assert await balance(resources, tenant.org_id) == before
    assert await pending_holds(resources) == 0
    await ledger_sums_hold(resources, tenant.org_id)


async def test_a_refused_base_url_falls_back_to_platform_only_when_opted_in(
    client: httpx.AsyncClient, resources: Resources, fake: FakeProvider, tenant_relay: Relay
) -> None:
    await add_model(resources, MODEL, provider="openai_compatible")
    await add_channel(resources, fake, "platform", [MODEL])
    tenant = await make_tenant(resources)
    await _store_unchecked(
        resources, tenant.org_id, "http://10.0.0.1:11434/v1", "tenant-key-123", "openai_compatible"
    )
    await _fallback(resources, tenant.org_id, True)
    resp = await client.post(
        "/v1/chat/completions", json={"model": MODEL, "messages": [HELLO]}, headers=tenant.auth
    )
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-oxinf-billing"] == "platform"
    # only the platform channel's call reached an upstream, with the platform's key
    assert [r.headers["authorization"] for r in fake.calls("/v1/chat")] == [
        f"Bearer {fake.api_key}"
    ]


async def test_a_public_name_that_resolves_inside_is_refused_before_connecting(
    client: httpx.AsyncClient, resources: Resources, fake: FakeProvider,
    tenant_relay: Relay, fake_dns: FakeDns,
) -> None:  # fmt: skip
    fake_dns.set("llm.tenant-example.com", ["127.0.0.1"])
    await add_model(resources, MODEL, provider="openai_compatible")
    tenant = await make_tenant(resources)
    portal = await _portal_headers(client, resources, await _email(resources, tenant.user_id))
    port = fake.base_url.rsplit(":", 1)[1]
    put = await client.put(
        "/portal/v1/byok",
        json={"provider": "openai_compatible", "api_key": fake.api_key,
              "base_url": f"https://llm.tenant-example.com:{port}/v1"},
        headers=portal,
    )  # fmt: skip
    assert put.status_code == 201, put.text  # the text is a public https URL: stored
    before = await balance(resources, tenant.org_id)

    for stream in (False, True):
        resp = await client.post(
            "/v1/chat/completions",
            json={"model": MODEL, "messages": [HELLO], "stream": stream},
            headers=tenant.auth,
        )
        assert resp.status_code == 400, resp.text
        message = resp.json()["error"]["message"]
        assert "resolves to a loopback address" in message
        assert "127.0.0.1" not in message
    assert "llm.tenant-example.com" in fake_dns.asked
    assert fake.requests == []
    assert await balance(resources, tenant.org_id) == before


@pytest.mark.parametrize(
    "base_url",
    [
        "http://127.0.0.1:8080/v1",
        "https://127.0.0.1/v1",
        "https://2130706433/v1",
        "https://0x7f.1/v1",
        "https://[::ffff:127.0.0.1]/v1",
        "https://[fd00::1]/v1",
        "https://169.254.169.254/v1",
        "https://100.100.100.200/v1",
        "https://10.1.2.3/v1",
        "https://localhost/v1",
        "https://ollama/v1",
        "https://llm.example.com/v1?",
        "https://llm.example.com/v1?x=1",
        "https://llm.example.com/v1#x",
        "https://user:pw@llm.example.com/v1",
        "https://llm.example.com:0/v1",
        "https://%6cocalhost/v1",
    ],
)
async def test_an_internal_base_url_is_never_stored(
    client: httpx.AsyncClient, resources: Resources, base_url: str
) -> None:
    tenant = await make_tenant(resources)
    portal = await _portal_headers(client, resources, await _email(resources, tenant.user_id))
    resp = await client.put(
        "/portal/v1/byok",
        json={"provider": "openai_compatible", "api_key": "tenant-key-123", "base_url": base_url},
        headers=portal,
    )
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["param"] == "base_url"
    listed = await client.get("/portal/v1/byok", headers=portal)
    assert listed.json()["data"] == []


async def test_an_operator_allowed_host_may_be_private_and_plain_http(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    tenant = await make_tenant(resources)
    portal = await _portal_headers(client, resources, await _email(resources, tenant.user_id))
    body = {"provider": "ollama", "api_key": "", "base_url": f"http://{ONPREM}:11434/v1/"}
    refused = await client.put("/portal/v1/byok", json=body, headers=portal)
    assert refused.status_code == 400, refused.text
    saved = resources.settings
    resources.settings = saved.model_copy(update={"tenant_egress_allow_hosts": [ONPREM]})
    try:
        stored = await client.put("/portal/v1/byok", json=body, headers=portal)
    finally:
        resources.settings = saved
    assert stored.status_code == 201, stored.text
    assert stored.json()["base_url"] == f"http://{ONPREM}:11434/v1"


async def test_an_allowed_host_is_reached_at_the_checked_address_for_json_and_streams(
    client: httpx.AsyncClient, resources: Resources, fake: FakeProvider,
    tenant_relay: Relay, fake_dns: FakeDns,
) -> None:  # fmt: skip
    # Only the policy's fake DNS knows this name: a call that arrives proves the transport
    # connected to the address the policy checked, not to one it looked up itself.
    fake_dns.set(ONPREM, ["127.0.0.1"])
    port = fake.base_url.rsplit(":", 1)[1]
    await add_model(resources, MODEL, provider="ollama")
    tenant = await make_tenant(resources)
    await _store_unchecked(
        resources, tenant.org_id, f"http://{ONPREM}:{port}/v1", fake.api_key, "ollama"
    )
    before = await balance(resources, tenant.org_id)
    for stream in (False, True):
        resp = await client.post(
            "/v1/chat/completions",
            json={"model": MODEL, "messages": [HELLO], "stream": stream},
            headers=tenant.auth,
        )
        assert resp.status_code == 200, resp.text
        assert resp.headers["x-oxinf-billing"] == "byok"
    calls = fake.calls("/v1/chat/completions")
    assert [c.headers["host"] for c in calls] == [f"{ONPREM}:{port}"] * 2
    assert await balance(resources, tenant.org_id) == before  # BYOK costs no credits


async def test_redirects_from_a_tenant_upstream_are_never_followed(
    resources: Resources, fake: FakeProvider
) -> None:
    http = build_tenant_http_client(EgressPolicy.of(["127.0.0.1"]))
    target = fake.base_url + "/v1/chat/completions"
    try:
        with Receiver([Reply(307, b"", {"location": target})]) as rx:
            upstream = Upstream("openai_compatible", rx.url("/v1"), "tenant-key-123", MODEL, 5.0)
            for call in ("chat", "stream"):
                with pytest.raises(Exception, match="upstream") as info:
                    fn = getattr(adapter_for("openai_compatible"), call)
                    await fn(http, upstream, {"model": MODEL, "messages": [HELLO]}, MODEL)
                assert getattr(info.value, "kind", None) != "ok"
        assert len(rx.received) == 2
    finally:
        await http.aclose()
    assert fake.requests == []


async def test_numeric_spellings_cannot_bypass_the_resolver(fake: FakeProvider) -> None:
    """aiohttp skips its resolver for hosts that look like IPs; the text check covers them."""
    port = fake.base_url.rsplit(":", 1)[1]
    http = build_tenant_http_client(EgressPolicy.of(["127.0.0.1"]))
    try:
        for host in ("2130706433", "0x7f.1", "127.1"):
            with pytest.raises(EgressRefused, match="dotted-quad"):
                await http.post(f"https://{host}:{port}/v1/chat/completions", json={})
        with pytest.raises(EgressRefused, match="loopback"):
            await http.post(f"https://[::ffff:127.0.0.2]:{port}/v1/chat/completions", json={})
    finally:
        await http.aclose()
    assert fake.requests == []


async def test_tls_goes_to_the_checked_address_but_is_verified_against_the_name(
    tmp_path: Path, fake_dns: FakeDns
) -> None:
    name = "llm.byok-tls.example"
    fake_dns.set(name, ["127.0.0.1"])
    good, wrong = make_cert(tmp_path, name), make_cert(tmp_path, "someone-else.example")
    answer = (
        b'{"id":"c1","object":"chat.completion","model":"m","choices":[{"index":0,'
        b'"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],'
        b'"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}'
    )
    policy = EgressPolicy.of([name])
    for cert, works in ((good, True), (wrong, False)):
        http = UpstreamClient(
            limits=httpx.Limits(max_connections=4), ssl_context=good.client_context(),
            egress=policy,
        )  # fmt: skip
        try:
            with Receiver(
                [Reply(200, answer, {"content-type": "application/json"})],
                tls=cert.server_context(),
            ) as rx:
                upstream = Upstream(
                    "openai_compatible", f"https://{name}:{rx.port}/v1", "k-123456789", "m", 5.0
                )
                adapter = adapter_for("openai_compatible")
                body = {"model": "m", "messages": [HELLO]}
                if works:
                    result = await adapter.chat(http, upstream, body, "m")  # the h1 pool
                    assert result.usage.prompt_tokens == 3
                    raw = await http.post(f"https://{name}:{rx.port}/v1/x", json={})  # aiohttp
                    assert raw.status_code == 200
                    assert [r.headers["host"] for r in rx.received] == [f"{name}:{rx.port}"] * 2
                else:
                    with pytest.raises(Exception, match="connect"):
                        await adapter.chat(http, upstream, body, "m")
                    assert rx.received == []
        finally:
            await http.aclose()


def test_the_tenant_client_is_built_from_the_settings_policy(resources: Resources) -> None:
    assert isinstance(resources.tenant_http, UpstreamClient)
    assert resources.relay.tenant_http is resources.tenant_http
    allowed = replace(resources.settings.tenant_egress, allowed_hosts=frozenset({ONPREM}))
    assert (
        resources.settings.model_copy(update={"tenant_egress_allow_hosts": [ONPREM]}).tenant_egress
        == allowed
    )
