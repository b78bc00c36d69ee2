"""The console home reads real data: exact credits, and a checklist that follows the org."""

from __future__ import annotations

import re
import uuid

import httpx

from config.runtime import Resources
from domain.audit.service import SYSTEM
from domain.identity import service as identity
from domain.identity.service import OrgContext
from domain.keys.service import create_key
from domain.ledger import service as ledger
from domain.usage import repository as usage_repo
from tests.fixtures.console import sign_up
from tests.fixtures.relay import add_model
from web.render import credits


async def own_ctx(resources: Resources, client: httpx.AsyncClient) -> OrgContext:
    async with resources.sessions() as s:
        user = await identity.authenticate_session(
            s, resources.identity, client.cookies["oxinf_session"]
        )
        ctx = await identity.org_context(s, user, None, None)
    return OrgContext(user, ctx.org, ctx.role, SYSTEM)


def progress(html: str) -> str:
    found = re.search(r"(\d) of 4 done", html)
    assert found
    return found.group(1)


async def test_checklist_follows_keys_and_calls(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    await sign_up(client)
    ctx = await own_ctx(resources, client)
    home = await client.get("/console")
    assert progress(home.text) == "0"
    assert "Get started" in home.text

    async with resources.sessions.begin() as s:
        key, _ = await create_key(s, ctx, resources.identity.pepper, name="first")
    assert progress((await client.get("/console")).text) == "1"

    async with resources.sessions.begin() as s:
        log = {
            "id": f"req_{uuid.uuid4().hex[:24]}",
            "org_id": ctx.org.id,
            "api_key_id": key.id,
            "model": "m",
            "status": "success",
            "http_status": 200,
        }
        await usage_repo.insert_log(s, log, [], None)
    home = await client.get("/console")
    assert progress(home.text) == "4"
    assert "You are all set" in home.text

    # Another org's activity never ticks this org's boxes.
    await sign_up(client)
    assert progress((await client.get("/console")).text) == "0"


async def test_balance_is_exact_decimal_credits(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    await sign_up(client)
    ctx = await own_ctx(resources, client)
    async with resources.sessions.begin() as s:
        await ledger.credit(
            s, ctx.org.id, 1_234_567_891, kind="purchase", key=f"t:{ctx.org.id}", actor="test"
        )
    home = await client.get("/console")
    assert '<p class="stat-value" data-testid="available">1,234.567891</p>' in home.text


def test_credit_formatting_is_exact() -> None:
    assert credits(0) == "0"
    assert credits(194_000) == "0.194"
    assert credits(1) == "0.000001"
    assert credits(25_000_000) == "25"
    assert credits(-3_500_000) == "-3.5"
    assert credits(100_000_000_000) == "100,000"
    assert credits(-1_234_567_000_001) == "-1,234,567.000001"


async def test_snippet_names_a_callable_model_and_this_server(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    await sign_up(client)
    home = await client.get("/console")
    assert "your-model" in home.text and "No models to call yet" in home.text
    await add_model(resources, "gpt-console-test")
    home = await client.get("/console")
    assert "gpt-console-test" in home.text and "No models to call yet" not in home.text
    assert "http://testserver/v1" in home.text
