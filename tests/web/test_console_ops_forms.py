"""The ops console's forms over HTTP: exact amounts, idempotent grants, refusals shown
beside their fields, write-only channel secrets, CSRF, and what each change leaves behind."""

from __future__ import annotations

import re
import uuid

import httpx
from sqlalchemy import text

from config.runtime import Resources
from tests.fakes.provider import FakeProvider
from tests.fixtures.console import csrf_of
from tests.fixtures.relay import MICROS, balance, make_tenant
from tests.relay.conftest import _reset_fake, fake  # noqa: F401
from tests.web.ops_helpers import developer_client, operator_client

KEY_RE = re.compile(r'name="key" value="([0-9a-f]+)"')


async def _grant_form(client: httpx.AsyncClient, org_id: uuid.UUID) -> dict[str, str]:
    page = await client.get(f"/console/ops/orgs/{org_id}")
    assert page.status_code == 200, page.text
    found = KEY_RE.search(page.text)
    assert found
    return {"csrf_token": csrf_of(page.text), "key": found.group(1)}


async def _audited(resources: Resources, org_id: uuid.UUID) -> list[tuple[str, str | None]]:
    async with resources.sessions() as s:
        rows = await s.execute(
            text("SELECT action, reason FROM audit_events WHERE org_id = :o AND action LIKE"
                 " 'credits.%' ORDER BY id"),
            {"o": org_id},
        )  # fmt: skip
        return [(str(a), r) for a, r in rows]


async def test_grant_is_exact_idempotent_and_audited(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    tenant = await make_tenant(resources, credits_micros=10 * MICROS)
    await operator_client(client, resources)
    form = await _grant_form(client, tenant.org_id)
    grant = {**form, "kind": "adjustment", "amount": "-2.000001", "reason": "duplicate charge"}
    first = await client.post(f"/console/ops/orgs/{tenant.org_id}/credits", data=grant)
    assert first.status_code == 303, first.text
    assert await balance(resources, tenant.org_id) == (7_999_999, 7_999_999)
    again = await client.post(f"/console/ops/orgs/{tenant.org_id}/credits", data=grant)
    assert again.status_code == 303  # the same form sent twice moves money once
    assert await balance(resources, tenant.org_id) == (7_999_999, 7_999_999)
    assert await _audited(resources, tenant.org_id) == [("credits.adjustment", "duplicate charge")]
    page = await client.get(again.headers["location"])
    assert "That grant was already made." in page.text
    assert "7.999999" in page.text and "-2.000001" in page.text


async def test_refused_grants_change_nothing_and_say_why(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    tenant = await make_tenant(resources, credits_micros=10 * MICROS)
    await operator_client(client, resources)
    form = await _grant_form(client, tenant.org_id)
    url = f"/console/ops/orgs/{tenant.org_id}/credits"
    cases = [
        ({"kind": "bonus", "amount": "1.5", "reason": "   "}, "reason", "A reason is required"),
        ({"kind": "bonus", "amount": "-1", "reason": "x"}, "amount", "A bonus adds credits"),
        ({"kind": "adjustment", "amount": "0", "reason": "x"}, "amount", "cannot be zero"),
        ({"kind": "adjustment", "amount": "1e3", "reason": "x"}, "amount", "Not a credit amount"),
        ({"kind": "adjustment", "amount": "0.1234567", "reason": "x"}, "amount", "6 decimals"),
    ]
    for fields, field, message in cases:
        resp = await client.post(url, data={**form, **fields})
        assert resp.status_code == 400, (fields, resp.text)
        assert f'id="f-{field}-error"' in resp.text and message in resp.text, (fields, resp.text)
        assert f'value="{form["key"]}"' in resp.text  # the retry keeps the form's key
    assert await balance(resources, tenant.org_id) == (10 * MICROS, 10 * MICROS)
    assert await _audited(resources, tenant.org_id) == []
    no_csrf = await client.post(url, data={**fields, "key": form["key"]})
    assert no_csrf.status_code == 403 and "This form could not be accepted" in no_csrf.text
    elsewhere = f"/console/ops/orgs/{uuid.uuid4()}/credits"
    missing = await client.post(elsewhere, data={**form, **cases[0][0], "reason": "x"})
    assert missing.status_code == 404


async def test_channel_secret_is_write_only(
    client: httpx.AsyncClient,
    resources: Resources,
    fake: FakeProvider,  # noqa: F811
) -> None:
    await operator_client(client, resources)
    token = csrf_of((await client.get("/console/ops/channels")).text)
    data = {
        "csrf_token": token, "name": "up", "provider": "openai",
        "base_url": fake.base_url + "/v1", "secret": fake.api_key, "models": "m-a, m-b",
        "model_mapping": "m-b=upstream-b", "group": "default", "priority": "3",
        "weight": "2", "types": "chat", "enabled": "1",
    }  # fmt: skip
    created = await client.post("/console/ops/channels", data=data)
    assert created.status_code == 303, created.text
    async with resources.sessions() as s:
        row = (await s.execute(text("SELECT id, secret_ciphertext, models, model_mapping,"
                                    " priority, weight FROM channels"))).one()  # fmt: skip
    channel_id, ciphertext = row[0], row[1]
    assert ciphertext and fake.api_key not in ciphertext
    assert row[2:] == (["m-a", "m-b"], {"m-b": "upstream-b"}, 3, 2)
    for path in ("/console/ops/channels", f"/console/ops/channels/{channel_id}"):
        shown = (await client.get(path)).text
        assert fake.api_key not in shown and ciphertext not in shown

    kept = await client.post(f"/console/ops/channels/{channel_id}", data={**data, "secret": ""})
    assert kept.status_code == 303
    test_url = f"/console/ops/channels/{channel_id}/test"
    probe = await client.post(test_url, data={"csrf_token": token}, headers={"hx-request": "true"})
    assert probe.status_code == 200 and "answered in" in probe.text, probe.text
    assert fake.api_key not in probe.text

    cleared = {**data, "secret": "", "clear_secret": "1"}
    assert (
        await client.post(f"/console/ops/channels/{channel_id}", data=cleared)
    ).status_code == 303
    probe = await client.post(
        f"/console/ops/channels/{channel_id}/test", data={"csrf_token": token}
    )
    assert probe.status_code == 303  # without htmx: back to the list with the result
    page = await client.get(probe.headers["location"])
    assert "Test of up failed" in page.text  # the fake refuses a call without its key

    bad = await client.post("/console/ops/channels", data={**data, "name": "up2", "types": ""})
    assert bad.status_code == 303  # no type ticked: chat, as the API defaults
    bad = await client.post("/console/ops/channels", data={**data, "name": "up3",
                                                          "base_url": "ftp://x"})  # fmt: skip
    assert bad.status_code == 400 and 'id="f-base_url-error"' in bad.text
    assert fake.api_key not in bad.text  # a refused form does not echo the secret
    dup = await client.post("/console/ops/channels", data=data)
    assert dup.status_code == 400 and "a channel with this name exists" in dup.text.lower()


async def test_lookup_finds_by_every_id_and_says_when_nothing_matches(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    await operator_client(client, resources)
    nothing = await client.get("/console/ops/requests", params={"q": "req_nope"})
    assert nothing.status_code == 200 and "Nothing found" in nothing.text
    missing = await client.get("/console/ops/requests/req_nope")
    assert missing.status_code == 404
    unknown_task = await client.get(f"/console/ops/tasks/{uuid.uuid4()}")
    assert unknown_task.status_code == 404


async def test_non_operator_sees_no_ops_link(client: httpx.AsyncClient) -> None:
    await developer_client(client)
    home = await client.get("/console")
    assert home.status_code == 200 and 'href="/console/ops"' not in home.text


async def test_channel_form_sets_and_clears_the_responses_capability(
    client: httpx.AsyncClient,
    resources: Resources,
    fake: FakeProvider,  # noqa: F811
) -> None:
    await operator_client(client, resources)
    token = csrf_of((await client.get("/console/ops/channels")).text)
    data = {
        "csrf_token": token, "name": "compat", "provider": "openai_compatible",
        "base_url": fake.base_url + "/v1", "secret": fake.api_key, "models": "m-a",
        "group": "default", "priority": "0", "weight": "1", "types": "chat", "enabled": "1",
        "responses_api": "1",
    }  # fmt: skip
    assert (await client.post("/console/ops/channels", data=data)).status_code == 303

    async def capabilities() -> list[str]:
        async with resources.sessions() as s:
            return list((await s.execute(text("SELECT capabilities FROM channels"))).scalar_one())

    assert await capabilities() == ["responses_api"]
    async with resources.sessions() as s:
        channel_id = (await s.execute(text("SELECT id FROM channels"))).scalar_one()
    edit = await client.get(f"/console/ops/channels/{channel_id}")
    assert 'name="responses_api" value="1" aria-describedby="f-responses_api-hint" checked' in (
        edit.text
    )
    unticked = {k: v for k, v in data.items() if k != "responses_api"}
    edited = await client.post(f"/console/ops/channels/{channel_id}", data=unticked)
    assert edited.status_code == 303
    assert await capabilities() == []

    wrong = {**data, "name": "claude", "provider": "anthropic", "base_url": fake.base_url}
    refused = await client.post("/console/ops/channels", data=wrong)
    assert refused.status_code == 400
    assert 'id="f-responses_api-hint">Only openai, openai_compatible' in refused.text
