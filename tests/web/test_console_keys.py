"""The API keys page over HTTP: the key shown once, friendly form errors, edits and
revocation, provider keys never echoed, CSRF, and what a member may not do."""

from __future__ import annotations

import html
import re
import uuid

import httpx
from sqlalchemy import text

from config.runtime import Resources
from domain.audit.service import SYSTEM
from domain.enterprise import service as enterprise
from domain.identity import service as identity
from domain.identity.service import OrgContext
from domain.pricing import service as catalog
from domain.pricing.models import NewModel, NewPrice
from tests.fixtures.console import csrf_of, form_token, sign_in, sign_up
from tests.fixtures.portal import PASSWORD
from tests.fixtures.relay import add_model

KEY_RE = re.compile(r"oxi_[0-9a-f]{64}")
OPENROUTER_KEY = "sk-or-v1-" + "a1b2c3d4" * 8
HTMX = {"hx-request": "true"}


async def generate(client: httpx.AsyncClient, **fields: str | list[str]) -> httpx.Response:
    token = await form_token(client, "/console/keys")
    data: dict[str, str | list[str]] = {
        "name": "Production app",
        "expires_in": "90d",
        "scopes": ["llm:inference", "llm:models"],
        "csrf_token": token,
    }
    data.update(fields)
    return await client.post("/console/keys", data=data, headers=HTMX)


async def key_rows(resources: Resources) -> list[tuple[str, str | None]]:
    async with resources.sessions() as s:
        rows = await s.execute(text("SELECT name, revoked_at::text FROM api_keys ORDER BY name"))
    return [(r[0], r[1]) for r in rows]


async def test_generate_shows_the_key_once_with_snippets(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    await add_model(resources, "gpt-test")
    await sign_up(client)
    empty = await client.get("/console/keys")
    assert empty.status_code == 200
    assert "No API keys yet" in empty.text and "No provider keys" in empty.text

    created = await generate(client, budget="12.5", rpm_limit="60", model_allowlist="gpt-test")
    assert created.status_code == 200, created.text
    keys = set(KEY_RE.findall(created.text))
    assert len(keys) == 1
    key = keys.pop()
    body = html.unescape(created.text)
    assert "It will not be shown again" in body
    # Python, curl and JavaScript, each with this server's base URL and the key.
    assert 'OpenAI(base_url="http://testserver/v1"' in body
    assert f'os.environ.setdefault("OXINF_API_KEY", "{key}")' in body
    assert "export OXINF_API_KEY=" + key in body
    assert 'process.env.OXINF_API_KEY ??= "' + key + '"' in body
    assert 'model="gpt-test"' in body

    again = await client.get("/console/keys")
    assert key not in again.text and not KEY_RE.search(again.text)
    assert key[:10] + "…" in again.text  # the prefix identifies it
    assert "12.5" in again.text and "Production app" in again.text
    assert "It will not be shown again" not in again.text


async def test_generate_form_errors_are_friendly_and_create_nothing(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    await sign_up(client)
    bad = await generate(client, name="", scopes=[], budget="12.1234567", rpm_limit="fast")
    assert bad.status_code == 200  # htmx swaps the form back in, with its messages
    assert "Give the key a name" in bad.text
    assert "Choose at least one permission." in bad.text
    assert "6 decimals at most" in bad.text
    assert "whole number from 1 to 1,000,000" in bad.text
    assert bad.text.count('aria-invalid="true"') >= 4
    assert await key_rows(resources) == []

    token = await form_token(client, "/console/keys")
    plain = await client.post(
        "/console/keys", data={"name": "x" * 101, "scopes": "tasks", "csrf_token": token}
    )
    assert plain.status_code == 400  # without htmx: the whole page, dialog open
    assert "data-open-on-load" in plain.text and "Give the key a name" in plain.text
    assert await key_rows(resources) == []


async def test_edit_limits_and_revoke(client: httpx.AsyncClient, resources: Resources) -> None:
    await sign_up(client)
    await generate(client, name="ci")
    page = await client.get("/console/keys")
    key_id = re.search(r"/console/keys/([0-9a-f-]{36})/edit", page.text)
    assert key_id
    edit_path = f"/console/keys/{key_id.group(1)}/edit"

    form = await client.get(edit_path)
    assert form.status_code == 200 and 'value="ci"' in form.text
    token = csrf_of(form.text)
    refused = await client.post(
        edit_path, data={"name": "ci", "scopes": "tasks", "rpm_limit": "0", "csrf_token": token}
    )
    assert refused.status_code == 400 and "whole number from 1" in refused.text

    saved = await client.post(
        edit_path,
        data={"name": "ci-2", "scopes": "tasks", "rpm_limit": "30", "budget": "5",
              "csrf_token": token},
    )  # fmt: skip
    assert saved.status_code == 303 and saved.headers["location"] == "/console/keys"
    async with resources.sessions() as s:
        row = (
            await s.execute(text("SELECT name, scopes, rpm_limit, budget_micros FROM api_keys"))
        ).one()
    assert tuple(row) == ("ci-2", ["tasks"], 30, 5_000_000)

    revoke_path = f"/console/keys/{key_id.group(1)}/revoke"
    no_token = await client.post(revoke_path, data={})
    assert no_token.status_code == 403
    assert [r[1] for r in await key_rows(resources)] == [None]
    revoked = await client.post(revoke_path, data={"csrf_token": token})
    assert revoked.status_code == 303
    assert [r[1] is not None for r in await key_rows(resources)] == [True]
    listing = await client.get("/console/keys")
    assert "Revoked" in listing.text and revoke_path not in listing.text


async def test_provider_keys_are_never_echoed(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    await sign_up(client)
    token = await form_token(client, "/console/keys")
    wrong = await client.post(
        "/console/keys/byok",
        data={"provider": "anthropic", "api_key": OPENROUTER_KEY, "label": "mine",
              "csrf_token": token},
    )  # fmt: skip
    assert wrong.status_code == 400
    assert "does not look like a anthropic key" in wrong.text.lower()
    assert OPENROUTER_KEY not in wrong.text and 'value="mine"' in wrong.text

    saved = await client.post(
        "/console/keys/byok",
        data={"provider": "openrouter", "api_key": OPENROUTER_KEY, "label": "mine",
              "csrf_token": token},
    )  # fmt: skip
    assert saved.status_code == 303
    page = await client.get("/console/keys")
    assert OPENROUTER_KEY not in page.text
    assert "sk-or-…a1b2" in page.text or "…" in page.text
    assert 'aria-checked="true"' in page.text

    off = await client.post(
        "/console/keys/byok/openrouter/enabled", data={"enabled": "false", "csrf_token": token}
    )
    assert off.status_code == 303
    async with resources.sessions() as s:
        enabled = (await s.execute(text("SELECT enabled FROM byok_keys"))).scalar_one()
    assert enabled is False

    fallback = await client.post(
        "/console/keys/fallback", data={"byok_fallback": "true", "csrf_token": token}
    )
    assert fallback.status_code == 303
    async with resources.sessions() as s:
        assert (await s.execute(text("SELECT bool_or(byok_fallback) FROM orgs"))).scalar_one()

    gone = await client.post("/console/keys/byok/openrouter/delete", data={"csrf_token": token})
    assert gone.status_code == 303
    async with resources.sessions() as s:
        assert (await s.execute(text("SELECT count(*) FROM byok_keys"))).scalar_one() == 0


async def test_a_member_cannot_use_admin_actions(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    owner_email = await sign_up(client)
    member_email = f"member-{uuid.uuid4().hex[:6]}@example.com"
    async with resources.sessions.begin() as s:
        owner = await identity.authenticate_session(
            s, resources.identity, client.cookies["oxinf_session"]
        )
        await identity.create_user(s, resources.identity, member_email, PASSWORD)
        org_id = await identity.create_org(s, "Acme", owner.id)
        ctx = await identity.org_context(s, owner, org_id, None)
        await enterprise.add_member(s, OrgContext(owner, ctx.org, "owner", SYSTEM),
                                    email=member_email, role="member")  # fmt: skip
    assert owner_email

    client.cookies.clear()
    assert (await sign_in(client, member_email)).status_code == 303
    token = await form_token(client, "/console/keys")
    switched = await client.post(
        "/console/orgs/switch", data={"org_id": str(org_id), "csrf_token": token}
    )
    assert switched.status_code == 303
    page = await client.get("/console/keys")
    assert page.status_code == 200
    assert "Add provider key" not in page.text and "/console/keys/fallback" not in page.text
    assert "Owners and admins of this organization can add provider keys." in page.text

    for path, data in (
        ("/console/keys/byok", {"provider": "openrouter", "api_key": OPENROUTER_KEY}),
        ("/console/keys/fallback", {"byok_fallback": "true"}),
    ):
        refused = await client.post(path, data={**data, "csrf_token": token})
        assert refused.status_code == 403, path
        assert "You cannot open this page" in refused.text
    async with resources.sessions() as s:
        assert (await s.execute(text("SELECT count(*) FROM byok_keys"))).scalar_one() == 0
        fallback = "SELECT byok_fallback FROM orgs WHERE id = :o"
        assert (await s.execute(text(fallback), {"o": org_id})).scalar_one() is False

    # A member manages their own platform keys, and the page lists only those.
    created = await generate(client, name="member key")
    assert KEY_RE.search(created.text)


async def test_models_page_shows_exact_prices_after_the_multiplier(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    await add_model(resources, "gpt-test", input_per_mtok=150, output_per_mtok=625)
    async with resources.sessions.begin() as s:
        await catalog.create_model(s, NewModel(name="img-test", type="image"))
        await catalog.set_price(s, "img-test", NewPrice(unit="image", unit_price_micros=40_001))
    await sign_up(client)
    async with resources.sessions.begin() as s:
        await s.execute(text("UPDATE orgs SET tier = 'starter', power_level = 'eco'"))
    page = await client.get("/console/models")
    assert page.status_code == 200
    assert 'data-testid="multiplier">Your multiplier \u00d7 0.6' in page.text  # 1.2 x 0.5
    assert "<strong>90</strong>" in page.text and "<strong>375</strong>" in page.text
    assert "gpt-test" in page.text
    assert "0.040001" in page.text and "<strong>0.0240006</strong>" in page.text


async def test_quickstart_and_help_pages(client: httpx.AsyncClient, resources: Resources) -> None:
    await add_model(resources, "gpt-test")
    await sign_up(client)
    quick = await client.get("/console/quickstart")
    assert quick.status_code == 200
    assert "http://testserver/v1" in quick.text and "gpt-test" in quick.text
    assert 'href="/help/api-keys"' in quick.text
    help_page = await client.get("/help/api-keys")
    assert help_page.status_code == 200
    for words in ("Credit charges", "When to use provider keys", "Revoke, permanently"):
        assert words in help_page.text
    home = await client.get("/console")
    assert 'href="/console/keys"' in home.text
    assert 'href="/console/quickstart"' in home.text and 'href="/help/api-keys"' in home.text


async def test_a_dialog_opens_by_address(client: httpx.AsyncClient) -> None:
    """`?open=` is how the dialogs work without JavaScript; only known dialogs open."""
    await sign_up(client)
    page = await client.get("/console/keys", params={"open": "generate-dialog"})
    assert 'id="generate-dialog" open data-open-on-load' in page.text
    assert 'href="?open=generate-dialog"' in page.text
    for odd in ('"><script>', "created-dialog", "x" * 60):
        page = await client.get("/console/keys", params={"open": odd})
        assert page.status_code == 200 and " open data-open-on-load" not in page.text
