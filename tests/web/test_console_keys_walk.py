"""A newcomer's walk through the keys pages in a real Chromium: sign up, follow the
checklist, generate a key (shown once), call the API with the `openai` SDK using what the
snippet says, add, disable and delete a provider key (never echoed), revoke the key (the
SDK then gets 401). Plus the CSRF refusal, keyboard use of the dialogs, the member's view,
and screenshots of every page at desktop and phone width."""

from __future__ import annotations

import re
from collections.abc import Iterator

import openai
import pytest
from playwright.async_api import Page, expect
from sqlalchemy import text

from config.runtime import Resources
from domain.audit.service import SYSTEM
from domain.enterprise import service as enterprise
from domain.identity import service as identity
from domain.identity.service import OrgContext
from domain.ledger import service as ledger
from domain.pricing.cost import MICROS_PER_CREDIT
from tests.fakes.provider import FakeProvider
from tests.fixtures.browser import OpenPage, new_email, sign_in_home, sign_up, snap
from tests.fixtures.portal import PASSWORD
from tests.fixtures.relay import add_channel, add_model

OPENROUTER_KEY = "sk-or-v1-" + "f00dcafe" * 8
BASE_URL_RE = re.compile(r'base_url="([^"]+)"')
KEY_RE = re.compile(r"oxi_[0-9a-f]{64}")


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider(api_key="sk-fake-upstream-" + "0" * 24) as provider:
        yield provider


async def fund_only_org(resources: Resources, credits: int) -> None:
    """The org's first credits (buying them is the credits page's walk)."""
    async with resources.sessions.begin() as s:
        org_id = (await s.execute(text("SELECT id FROM orgs"))).scalar_one()
        await ledger.credit(
            s, org_id, credits * MICROS_PER_CREDIT, kind="purchase", key=f"walk:{org_id}",
            actor="test",
        )  # fmt: skip


def sdk(base_url: str, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=base_url, api_key=key, max_retries=0)


async def assert_no_plaintext(page: Page) -> None:
    assert OPENROUTER_KEY not in await page.content()


async def test_walk_from_sign_up_to_a_revoked_key(
    open_page: OpenPage, resources: Resources, fake: FakeProvider
) -> None:
    await add_model(resources, "gpt-walk")
    await add_channel(resources, fake, "walk", ["gpt-walk"])
    page = await open_page()
    await sign_up(page, new_email("keys"))
    await expect(page).to_have_url(re.compile(r"/console$"))
    await fund_only_org(resources, 100)

    checklist = page.get_by_test_id("checklist")
    await expect(checklist).to_contain_text("0 of 4 done")
    await checklist.get_by_role("link", name="Create an API key").click()
    await expect(page).to_have_url(re.compile(r"/console/keys$"))
    await expect(page.get_by_text("No API keys yet")).to_be_visible()
    await expect(page.get_by_text("No provider keys")).to_be_visible()
    await snap(page, "keys-empty")

    # The dialog opens and closes from the keyboard; focus goes in and comes back.
    opener = page.get_by_role("button", name="+ Generate new key").first
    await opener.focus()
    await page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Generate platform API key")
    await expect(dialog).to_be_visible()
    await expect(dialog.get_by_label("Key name")).to_be_focused()
    await page.keyboard.press("Escape")
    await expect(dialog).to_be_hidden()
    await expect(opener).to_be_focused()

    # A mistake is explained next to its field, and the dialog stays open.
    await opener.click()
    await dialog.get_by_role("button", name="Generate key").click()
    await expect(dialog.get_by_text("Give the key a name")).to_be_visible()
    await expect(dialog.get_by_label("Key name")).to_be_focused()
    await snap(page, "keys-generate-error")
    await dialog.get_by_label("Key name").fill("Walk app")
    await dialog.get_by_label("Expiration").select_option("30d")
    await dialog.get_by_label("Budget in credits").fill("50")
    await snap(page, "keys-generate")
    await dialog.get_by_role("button", name="Generate key").click()

    created = page.get_by_test_id("created-key")
    await expect(created).to_contain_text("It will not be shown again")
    key = (await page.locator("#created-key").inner_text()).strip()
    assert KEY_RE.fullmatch(key), key
    python = await page.locator("#created-snippet-python").inner_text()
    assert key in python
    await created.get_by_role("tab", name="curl").click()
    await expect(page.locator("#created-snippet-curl")).to_contain_text(key)
    await created.get_by_role("tab", name="Python").click()
    await snap(page, "keys-created")

    # The snippet's call, made with the openai SDK against this live server.
    found = BASE_URL_RE.search(python)
    assert found, python
    client = sdk(found.group(1), key)
    reply = await client.chat.completions.create(
        model="gpt-walk", messages=[{"role": "user", "content": "hello from the walk"}]
    )
    assert reply.choices[0].message.content == " ".join(f"w{i}" for i in range(8))

    await created.get_by_role("link", name="I saved my key").click()
    await expect(page).to_have_url(re.compile(r"/console/keys$"))
    row = page.get_by_test_id("platform-keys").locator("tbody tr")
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text("Walk app")
    await expect(row).to_contain_text("Active")
    await expect(row).to_contain_text(key[:10] + "…")
    await page.reload()
    assert key not in await page.content()  # reloading never shows it again
    await snap(page, "keys")

    # Edit limits on their own page.
    await page.get_by_role("link", name="Edit limits of Walk app").click()
    await expect(page.get_by_role("heading", name="Edit “Walk app”")).to_be_visible()
    await page.get_by_label("Requests per minute").fill("120")
    await snap(page, "keys-edit")
    await page.get_by_role("button", name="Save limits").click()
    await expect(page.get_by_role("status")).to_contain_text("Saved the limits")
    await expect(row).to_contain_text("120")

    # A provider key: added, switched off, deleted; the page never holds its text.
    await page.get_by_role("button", name="+ Add provider key").click()
    byok = page.get_by_role("dialog", name="Add provider key")
    await expect(byok.get_by_label("Provider")).to_be_focused()
    await expect(byok).to_contain_text("No credits charged")
    await byok.get_by_label("Provider").select_option("anthropic")
    await byok.get_by_label("API key").fill(OPENROUTER_KEY)
    await byok.get_by_role("button", name="Validate & save").click()
    await expect(byok).to_be_visible()  # reopened with the reason, the key not echoed
    await expect(byok.get_by_text("does not look like a anthropic key")).to_be_visible()
    await expect(byok.get_by_label("API key")).to_have_value("")
    await expect(byok.get_by_label("API key")).to_be_focused()
    await assert_no_plaintext(page)
    await snap(page, "keys-byok-error")
    await byok.get_by_label("Provider").select_option("openrouter")
    await byok.get_by_label("API key").fill(OPENROUTER_KEY)
    await byok.get_by_label("Label (optional)").fill("Team OpenRouter")
    await snap(page, "keys-byok-add")
    await byok.get_by_role("button", name="Validate & save").click()
    await expect(page.get_by_role("status")).to_contain_text("Saved your OpenRouter key")
    providers = page.get_by_test_id("byok").locator("tbody tr")
    await expect(providers).to_contain_text("Team OpenRouter")
    switch = page.get_by_role("switch", name="OpenRouter key enabled")
    await expect(switch).to_have_attribute("aria-checked", "true")
    await assert_no_plaintext(page)
    await snap(page, "keys-byok")
    await snap(page, "keys-byok-dark", dark=True)

    await switch.click()
    await expect(page.get_by_role("status")).to_contain_text("OpenRouter key is disabled")
    await expect(switch).to_have_attribute("aria-checked", "false")
    await assert_no_plaintext(page)
    fallback = page.get_by_test_id("fallback")
    await fallback.click()
    await expect(fallback).to_have_attribute("aria-checked", "true")

    await page.get_by_role("button", name="Delete OpenRouter key").click()
    confirm = page.get_by_role("dialog", name="Delete the OpenRouter key?")
    await expect(confirm.get_by_role("button", name="Keep it")).to_be_focused()
    await confirm.get_by_role("button", name="Delete key").click()
    await expect(page.get_by_role("status")).to_contain_text("Deleted your OpenRouter key")
    await expect(page.get_by_text("No provider keys")).to_be_visible()
    await assert_no_plaintext(page)

    # Revoke, with a confirmation; the SDK is refused from then on.
    await page.get_by_role("button", name="Revoke Walk app").click()
    revoke = page.get_by_role("dialog", name="Revoke “Walk app”?")
    await expect(revoke.get_by_role("button", name="Keep the key")).to_be_focused()
    await snap(page, "keys-revoke")
    await revoke.get_by_role("button", name="Revoke key").click()
    await expect(page.get_by_role("status")).to_contain_text("Revoked “Walk app”")
    await expect(row).to_contain_text("Revoked")
    with pytest.raises(openai.AuthenticationError) as refused:
        await client.chat.completions.create(
            model="gpt-walk", messages=[{"role": "user", "content": "still there?"}]
        )
    assert refused.value.status_code == 401

    # The checklist noticed the key and the call.
    await (
        page.get_by_role("navigation", name="Console").get_by_role("link", name="Overview").click()
    )
    await expect(page.get_by_test_id("checklist")).to_contain_text("4 of 4 done")


async def test_guides_and_models_pages(open_page: OpenPage, resources: Resources) -> None:
    await add_model(resources, "gpt-walk", input_per_mtok=150, output_per_mtok=600)
    page = await open_page()
    await sign_up(page, new_email("guides"))
    await expect(page).to_have_url(re.compile(r"/console$"))
    nav = page.get_by_role("navigation", name="Console")

    await page.get_by_test_id("checklist").get_by_role("link", name="quickstart").click()
    await expect(page.get_by_role("heading", name="Quickstart")).to_be_visible()
    await expect(page.locator("#qs-snippet-python")).to_contain_text("gpt-walk")
    await snap(page, "quickstart")

    await page.get_by_role("link", name="BYOK or platform keys: which should I use?").click()
    await expect(page).to_have_url(re.compile(r"/help/api-keys$"))
    table = page.get_by_test_id("comparison")
    await expect(table.get_by_role("row")).to_have_count(10)
    await expect(page.get_by_role("heading", name="When to use provider keys")).to_be_visible()
    await snap(page, "help-api-keys")

    await nav.get_by_role("link", name="Models").click()
    await expect(page.get_by_test_id("multiplier")).to_have_text("Your multiplier \u00d7 1")
    await expect(page.get_by_test_id("chat-models")).to_contain_text("150")
    await expect(page.get_by_text("No media models yet")).to_be_visible()
    await snap(page, "models")


async def test_csrf_refused_and_member_view(open_page: OpenPage, resources: Resources) -> None:
    owner_email, member_email = new_email("owner"), new_email("member")
    async with resources.sessions.begin() as s:
        owner = await identity.create_user(s, resources.identity, owner_email, PASSWORD)
        await identity.create_user(s, resources.identity, member_email, PASSWORD)
        org_id = await identity.create_org(s, "Acme Labs", owner.id)
        ctx = await identity.org_context(s, owner, org_id, None)
        await enterprise.add_member(s, OrgContext(owner, ctx.org, "owner", SYSTEM),
                                    email=member_email, role="member")  # fmt: skip

    page = await open_page()
    await sign_in_home(page, member_email)
    await page.get_by_label("Organization").select_option(label="Acme Labs · member")
    await expect(page.locator(".eyebrow")).to_have_text("Acme Labs")
    await (
        page.get_by_role("navigation", name="Console").get_by_role("link", name="API keys").click()
    )
    await expect(page.get_by_role("button", name="+ Add provider key")).to_have_count(0)
    await expect(page.get_by_test_id("fallback")).to_have_count(0)
    await expect(page.get_by_text("Owners and admins of this organization")).to_be_visible()
    await snap(page, "keys-member")

    # The member's own key, then a revoke form stripped of its token: refused, nothing changed.
    await page.get_by_role("button", name="+ Generate new key").first.click()
    dialog = page.get_by_role("dialog", name="Generate platform API key")
    await dialog.get_by_label("Key name").fill("member key")
    await dialog.get_by_role("button", name="Generate key").click()
    await page.get_by_role("link", name="I saved my key").click()
    await page.locator("form[action$='/revoke'] input[name=csrf_token]").evaluate(
        "el => el.remove()"
    )
    await page.get_by_role("button", name="Revoke member key").click()
    await page.get_by_role("button", name="Revoke key").click()
    await expect(
        page.get_by_role("heading", name="This form could not be accepted")
    ).to_be_visible()
    async with resources.sessions() as s:
        revoked = await s.execute(text("SELECT revoked_at FROM api_keys"))
    assert [r[0] for r in revoked] == [None]

    # Admin-only actions, posted with a valid token, answer the 403 page.
    response = await page.goto("/console/keys")
    assert response is not None and response.ok
    token = await page.locator("meta[name=csrf-token]").get_attribute("content")
    forbidden = await page.request.post(
        "/console/keys/byok",
        form={"provider": "openrouter", "api_key": OPENROUTER_KEY, "csrf_token": token or ""},
    )
    assert forbidden.status == 403
    assert "You cannot open this page" in await forbidden.text()
    async with resources.sessions() as s:
        count = (await s.execute(text("SELECT count(*) FROM byok_keys"))).scalar_one()
    assert count == 0


async def test_keys_without_javascript(open_page: OpenPage, resources: Resources) -> None:
    """With scripts off the dialogs open in place and the forms post as usual."""
    page = await open_page(java_script_enabled=False)
    await sign_up(page, new_email("nojs"))
    await expect(page).to_have_url(re.compile(r"/console$"))
    await page.goto("/console/quickstart")
    await page.get_by_role("link", name="Generate a key").click()
    dialog = page.get_by_role("dialog", name="Generate platform API key")
    await expect(dialog).to_be_visible()
    await dialog.get_by_label("Key name").fill("No script")
    await dialog.get_by_role("button", name="Generate key").click()
    created = page.get_by_test_id("created-key")
    await expect(created).to_contain_text("It will not be shown again")
    key = (await page.locator("#created-key").inner_text()).strip()
    assert KEY_RE.fullmatch(key), key
    await snap(page, "keys-created-no-js")
    await created.get_by_role("link", name="I saved my key").click()
    await expect(page.get_by_test_id("platform-keys")).to_contain_text("No script")
    assert key not in await page.content()
