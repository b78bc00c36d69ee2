"""An owner runs an enterprise org in a real Chromium: invites a member (who accepts the
link), caps the member's department with a hard budget that the member's key then runs
into through the OpenAI SDK, and finds the spend on the invoice page and in its CSV to the
micro-credit, and every step in the audit log. Each page is saved at desktop and phone
width."""

from __future__ import annotations

import asyncio
import csv
import io
import re
import secrets
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import openai
import pytest
from playwright.async_api import Dialog, Page, expect
from sqlalchemy import text

from config.runtime import Resources
from domain.identity import service as identity
from domain.keys.service import create_key
from domain.ledger import service as ledger
from tests.fakes.provider import FakeProvider
from tests.fixtures.browser import OpenPage, new_email, sign_in_home, snap
from tests.fixtures.portal import PASSWORD
from tests.fixtures.relay import MICROS, add_channel, add_model
from web.render import credits

HELLO = [{"role": "user", "content": "hello there friend"}]


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider(api_key="sk-fake-upstream-" + "2" * 24) as provider:
        yield provider


async def ledger_debits(resources: Resources, org_id: uuid.UUID) -> int:
    async with resources.sessions() as s:
        total = await s.execute(
            text(
                "SELECT coalesce(-sum(amount_micros), 0) FROM ledger_entries"
                " WHERE org_id = :o AND kind = 'debit'"
            ),
            {"o": org_id},
        )
        return int(total.scalar_one())


def accept_dialogs(page: Page) -> None:
    def on_dialog(dialog: Dialog) -> None:
        asyncio.get_running_loop().create_task(dialog.accept())

    page.on("dialog", on_dialog)


async def tab(page: Page, name: str) -> None:
    await (
        page.get_by_role("navigation", name="Console")
        .get_by_role("link", name=name, exact=True)
        .click()
    )


async def test_owner_invites_budgets_invoices_and_audits(
    open_page: OpenPage, resources: Resources, fake: FakeProvider, console_url: str
) -> None:
    model = f"gpt-walk-{secrets.token_hex(3)}"
    await add_model(resources, model)
    await add_channel(resources, fake, f"walk-{secrets.token_hex(3)}", [model])
    owner_email, member_email = new_email("owner"), new_email("member")
    async with resources.sessions.begin() as s:
        owner = await identity.create_user(s, resources.identity, owner_email, PASSWORD)
        org_id = await identity.create_org(s, "Acme Corp", owner.id, tier="professional")
        await ledger.credit(s, org_id, 1_000 * MICROS, kind="purchase", key=f"seed:{org_id}",
                            actor="test")  # fmt: skip

    page = await open_page()
    accept_dialogs(page)
    await sign_in_home(page, owner_email)
    await page.get_by_label("Organization").select_option(label="Acme Corp · owner")
    await expect(page.locator(".eyebrow")).to_have_text("Acme Corp")

    # Organization: settings, and the webhook secret shown only when asked for.
    await (
        page.get_by_role("navigation", name="Console")
        .get_by_role("link", name="Organization")
        .click()
    )
    await expect(page).to_have_url(re.compile(r"/console/org$"))
    await expect(page.locator("#webhook-secret")).to_have_count(0)
    await page.get_by_label("Retention window (days)").fill("90")
    await page.get_by_role("button", name="Save settings").click()
    await expect(page.get_by_role("status")).to_contain_text("Settings saved.")
    await expect(page.get_by_label("Retention window (days)")).to_have_value("90")
    await page.get_by_role("button", name="Reveal secret").click()
    await expect(page.locator("#webhook-secret")).to_contain_text("whsec_")
    await snap(page, "ent-org")

    # Departments and cost centers.
    await tab(page, "Departments")
    await page.get_by_label("Name", exact=True).fill("Research")
    await page.get_by_role("button", name="Create department").click()
    await expect(page.get_by_role("status")).to_contain_text("Created Research.")
    await tab(page, "Cost centers")
    await page.get_by_label("Code", exact=True).fill("CC-100")
    await page.get_by_label("Name (optional)").fill("Research & development")
    await page.get_by_role("button", name="Create cost center").click()
    await expect(page.locator("tr[data-entity='CC-100']")).to_be_visible()
    await snap(page, "ent-cost-centers")

    # Members: an invite link for a newcomer, into Research and CC-100.
    await tab(page, "Members")
    await page.get_by_label("Email", exact=True).fill(member_email)
    await page.get_by_label("Department", exact=True).select_option(label="Research")
    await page.get_by_label("Cost center", exact=True).select_option(label="CC-100")
    await page.get_by_role("button", name="Create invite link").click()
    link = (await page.locator("#invite-url").inner_text()).strip()
    assert re.fullmatch(re.escape(console_url) + r"/console/invites/inv_[0-9a-f]{48}", link)
    await expect(page.get_by_test_id("invite-link")).to_contain_text("expires")
    await snap(page, "ent-members-invite")

    # The newcomer accepts: a new account for exactly the invited address, in the org.
    member_page = await open_page()
    await member_page.goto(link)
    await expect(member_page.get_by_role("heading", name="Join Acme Corp")).to_be_visible()
    await expect(member_page.get_by_label("Email")).to_have_value(member_email)
    await snap(member_page, "ent-invite-accept")
    await member_page.get_by_label("Choose a password").fill(PASSWORD)
    await member_page.get_by_role("button", name="Create account and join").click()
    await expect(member_page).to_have_url(re.compile(r"/console$"))
    await expect(member_page.get_by_role("status")).to_contain_text("Welcome to Acme Corp!")
    await expect(member_page.get_by_label("Organization")).to_have_value(str(org_id))
    nav = member_page.get_by_role("navigation", name="Console")
    await expect(nav.get_by_role("link", name="Organization")).to_have_count(0)
    refused = await member_page.goto("/console/budgets")
    assert refused is not None and refused.status == 403
    await expect(
        member_page.get_by_text("for this organization's owners and admins")
    ).to_be_visible()
    await snap(member_page, "ent-forbidden-member")

    await tab(page, "Members")  # not a reload: that would post the invite form again
    row = page.locator(f"tr[data-email='{member_email}']")
    await expect(row.get_by_label(f"Department of {member_email}")).to_have_value(
        re.compile("[0-9a-f-]{36}")
    )
    await expect(page.get_by_test_id("seats")).to_contain_text("2 seats used")
    await snap(page, "ent-members")

    # A hard monthly budget on Research: one call holds at most 0.010 credits and costs
    # about 0.006, so 0.02 credits lets a couple through and refuses the rest.
    await tab(page, "Budgets")
    await page.get_by_label("Name", exact=True).fill("Research monthly")
    await page.get_by_label("Applies to").select_option(label="Research")
    await page.get_by_label("Monthly limit (credits)").fill("0.02")
    await page.get_by_label("Mode").select_option("hard")
    await page.get_by_role("button", name="Create budget").click()
    await expect(page.get_by_role("status")).to_contain_text("Budget Research monthly created.")

    async with resources.sessions.begin() as s:
        member = await identity.authenticate_session(
            s, resources.identity, (await _session_cookie(member_page))
        )
        ctx = await identity.org_context(s, member, org_id, None)
        _, member_key = await create_key(s, ctx, resources.identity.pepper, name="member key")
    sdk = openai.AsyncOpenAI(base_url=console_url + "/v1", api_key=member_key, max_retries=0)
    answered, refusal = 0, None
    for _ in range(10):
        try:
            await sdk.chat.completions.create(model=model, messages=HELLO, max_tokens=8)  # type: ignore[arg-type]
            answered += 1
        except openai.APIStatusError as exc:
            refusal = exc
            break
    await sdk.close()
    assert answered >= 1 and refusal is not None, answered
    assert refusal.status_code == 402
    assert refusal.body["code"] == "api_key_budget_exhausted"  # type: ignore[index]

    spent = await ledger_debits(resources, org_id)
    assert spent > 0
    await page.reload()
    budget = page.locator("[data-budget='Research monthly']")
    await expect(budget.get_by_test_id("spent")).to_have_text(credits(spent))
    await expect(page.get_by_test_id("alerts")).to_contain_text("50%")
    await snap(page, "ent-budgets")

    # Policies: Research may call only this model, and never has its content logged.
    await tab(page, "Policies")
    policy = page.locator("[data-department='Research']")
    await policy.get_by_label("Only the models ticked below").check()
    await policy.get_by_label(model).check()
    await policy.get_by_label("Content logging").select_option("disabled")
    await policy.get_by_role("button", name="Save policy for Research").click()
    await expect(page.get_by_role("status")).to_contain_text("Policy saved.")
    await expect(page.locator("[data-department='Research']")).to_contain_text(
        "1 model allowed · content logging: disabled"
    )
    await snap(page, "ent-policies")

    # Invoices: the month's statement, on the page and in the CSV, is the ledger's debits.
    month = datetime.now(UTC).strftime("%Y-%m")
    await tab(page, "Invoices")
    listed = page.locator(f"tr[data-month='{month}']")
    await expect(listed).to_contain_text(credits(spent))
    await snap(page, "ent-invoices")
    await listed.get_by_role("link", name=month).click()
    await expect(page.get_by_test_id("invoice-total")).to_have_text(credits(spent))
    line = page.locator("tr[data-cost-center='CC-100']")
    await expect(line).to_contain_text(credits(spent))  # every debit came from the member
    await snap(page, "ent-invoice")
    async with page.expect_download() as download_info:
        await page.get_by_role("link", name="Download CSV").click()
    download = await download_info.value
    assert download.suggested_filename == f"invoice-{month}.csv"
    rows = list(csv.DictReader(io.StringIO(Path(await download.path()).read_text())))
    by_center = {r["cost_center"]: r for r in rows}
    assert int(by_center["TOTAL"]["debit_micros"]) == spent
    assert int(by_center["CC-100"]["debit_micros"]) == spent
    assert by_center["TOTAL"]["debit_credits"] == credits(spent).replace(",", "")

    # The audit log has each of these actions, and filters down to one of them.
    await tab(page, "Audit log")
    trail = page.get_by_test_id("audit")
    for action in (
        "org.updated", "webhook_secret.revealed", "department.created", "cost_center.created",
        "invite.created", "invite.accepted", "budget.created", "budget.alert", "policy.updated",
    ):  # fmt: skip
        await expect(trail.locator(f"tr[data-action='{action}']").first).to_be_visible()
    accepted = trail.locator("tr[data-action='invite.accepted']")
    await expect(accepted).to_contain_text(member_email)
    await expect(trail.locator("tr[data-action='org.updated']")).to_contain_text("30 → 90")
    await snap(page, "ent-audit")
    await page.get_by_label("Action").select_option("budget.created")
    await page.get_by_role("button", name="Filter").click()
    await expect(page.get_by_test_id("audit").locator("tbody tr")).to_have_count(1)
    await expect(page.get_by_test_id("audit")).to_contain_text("Research monthly")
    await snap(page, "ent-audit-filtered")

    await tab(page, "Departments")
    await expect(page.locator("tr[data-entity='Research']")).to_contain_text("1 member")
    await snap(page, "ent-departments")
    # Archived, Research keeps its member and budget but is offered for nothing new.
    await page.get_by_role("button", name="Archive Research").click()
    await expect(page.get_by_role("button", name="Restore Research")).to_be_visible()
    await expect(page.locator("tr[data-entity='Research']")).to_contain_text("1 member")
    await snap(page, "ent-departments-archived")
    await tab(page, "Members")
    invite_departments = page.get_by_label("Department", exact=True).locator("option")
    await expect(invite_departments).to_have_text(["No department"])


async def _session_cookie(page: Page) -> str:
    cookies = await page.context.cookies()
    return next(c["value"] for c in cookies if c["name"] == "oxinf_session")
