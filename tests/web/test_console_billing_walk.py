"""The billing half of the console in a real Chromium: a call made with the `openai` SDK
shows up in Requests, Usage and the credits chart, and buying through (fake) Stripe Checkout
raises the balance exactly once; every page is screenshotted at desktop and phone width."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import openai
import pytest
from playwright.async_api import Browser, Route, expect
from temporalio.testing import WorkflowEnvironment

from config.runtime import Resources
from domain.identity import service as identity
from domain.keys.service import create_key
from domain.ledger import service as ledger
from tests.fakes.provider import FakeProvider
from tests.fakes.stripe import FakeStripe
from tests.fixtures.browser import new_email, page_opener, sign_up, snap
from tests.fixtures.relay import add_channel, add_model
from tests.web.billing_data import add_callback, add_task
from tests.web.stripe_shop import (
    CHECKOUT_HOST,
    MICROS,
    Shop,
    micros_of,
    open_shop,
)

HELLO = {"role": "user", "content": "hello there friend"}


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeProvider]:
    with FakeProvider(api_key="sk-fake-upstream-" + "0" * 24) as provider:
        yield provider


@pytest.fixture
async def shop(
    resources: Resources, time_skipping_env: WorkflowEnvironment, stripe: FakeStripe
) -> AsyncIterator[Shop]:
    async with open_shop(resources, time_skipping_env, stripe, "console-walk") as opened:
        yield opened


async def fake_checkout_page(route: Route, stripe: FakeStripe) -> None:
    """Stands in for Stripe's hosted page: a Pay link back to the session's success URL."""
    session_id = route.request.url.rsplit("/", 1)[-1]
    session = stripe.session(session_id)
    back = str(session["success_url"]).replace("{CHECKOUT_SESSION_ID}", session_id)
    body = (
        "<!doctype html><title>Fake Stripe Checkout</title><h1>Pay "
        f"{int(session['amount_total']) / 100:.2f} USD</h1><a href='{back}'>Pay</a>"
    )
    await route.fulfill(status=200, content_type="text/html", body=body)


async def test_call_shows_in_requests_usage_and_chart_then_buying_credits_once(
    browser: Browser, shop: Shop, upstream: FakeProvider, resources: Resources
) -> None:
    async with page_opener(browser, shop.url) as open_one:
        page = await open_one()
        await page.route(f"{CHECKOUT_HOST}**", lambda route: fake_checkout_page(route, shop.stripe))

        # Sign up; the org starts with nothing, so an operator grants a few trial credits.
        await sign_up(page, new_email("walk"))
        await expect(page).to_have_url(re.compile(r"/console/plan$"))  # Stripe is configured
        for path, name in (
            ("/console/requests", "requests-empty"),
            ("/console/tasks", "tasks-empty"),
        ):
            await page.goto(path)
            await expect(page.locator(".empty-title")).to_contain_text("No")
            await snap(page, name)
        token = next(
            c["value"] for c in await page.context.cookies() if c["name"] == "oxinf_session"
        )
        async with resources.sessions.begin() as s:
            user = await identity.authenticate_session(s, resources.identity, token)
            ctx = await identity.org_context(s, user, None, None)
            await ledger.credit(
                s, ctx.org.id, 5 * MICROS, kind="bonus", key=f"trial:{ctx.org.id}",
                actor="test", reason="Trial credits",
            )  # fmt: skip
            _, api_key = await create_key(s, ctx, resources.identity.pepper, name="walk key")
        await add_model(resources, "gpt-walk")
        await add_channel(resources, upstream, "walk", ["gpt-walk"])

        # Calls with the SDK against the live server, as the snippet makes them.
        sdk = openai.AsyncOpenAI(base_url=f"{shop.url}/v1", api_key=api_key, max_retries=0)
        for _ in range(2):
            answer = await sdk.chat.completions.create(model="gpt-walk", messages=[HELLO])  # type: ignore[list-item]
            assert answer.choices[0].message.content
        await sdk.close()

        # Requests: the call is listed, and its trace opens.
        await (
            page.get_by_role("navigation", name="Console")
            .get_by_role("link", name="Requests")
            .click()
        )
        await expect(page).to_have_url(re.compile(r"/console/requests$"))
        rows = page.get_by_test_id("requests-table").locator("tbody tr")
        await expect(rows).to_have_count(2)
        await expect(rows.first).to_contain_text("gpt-walk")
        await expect(rows.first).to_contain_text("walk key")
        await snap(page, "requests")
        await rows.first.locator("a.row-link").click()
        await expect(page).to_have_url(re.compile(r"/console/requests/req_"))
        await expect(page.get_by_test_id("request-status")).to_have_text("succeeded")
        await expect(page.get_by_test_id("request-model")).to_have_text("gpt-walk")
        await snap(page, "request-detail")

        # Usage: the call counted, with the chart drawn for the range.
        await page.goto("/console/usage")
        await expect(page.get_by_test_id("usage-requests")).to_have_text("2")
        await expect(page.get_by_test_id("usage-chart")).to_have_attribute("data-drawn", "true")
        await snap(page, "usage")
        await page.get_by_label("Group by").select_option("model")
        await page.get_by_role("button", name="Show").click()
        await expect(page.get_by_test_id("usage-table")).to_contain_text("gpt-walk")
        await snap(page, "usage-by-model")

        # Credits: today's point on the chart, and its by-model value on hover.
        await page.goto("/console/credits")
        chart = page.get_by_test_id("credits-chart")
        await expect(chart).to_have_attribute("data-drawn", "true")
        await expect(chart).to_have_attribute("data-points", "1")
        spent = await page.get_by_test_id("period-used").inner_text()
        assert spent != "0"
        over = chart.locator(".u-over")
        box = await over.bounding_box()
        assert box is not None
        await over.hover(position={"x": box["width"] - 3, "y": box["height"] / 2})
        legend = chart.locator(".u-legend")
        await expect(legend).to_contain_text("gpt-walk")
        await expect(legend).to_contain_text(datetime.now(UTC).date().isoformat())
        await expect(legend).to_contain_text(spent)  # today's total is this period's spend
        before = await page.get_by_test_id("balance").inner_text()
        await snap(page, "credits")

        # Buy: the package form goes to (fake) Stripe and back to the success page.
        await page.get_by_label(re.compile("Starter")).check()
        await page.get_by_role("button", name="Continue to checkout").click()
        await expect(page).to_have_url(re.compile(r"^https://checkout\.fake\.stripe\.test/"))
        session_id = page.url.rsplit("/", 1)[-1]
        await page.get_by_role("link", name="Pay").click()
        await expect(page).to_have_url(re.compile(r"/console/credits/success\?session_id=cs_"))
        status = page.get_by_test_id("checkout-status")
        await expect(status).to_have_attribute("data-state", "waiting")
        await snap(page, "checkout-waiting")

        event = shop.stripe.completed(session_id)
        assert await shop.deliver(event) == "credited"
        await shop.deliver(event)  # Stripe delivers at least once: a repeat adds nothing
        await expect(status).to_have_attribute("data-state", "credited")  # htmx polled it
        await expect(status).to_contain_text("10,000 credits added")
        await snap(page, "checkout-success")

        await page.get_by_role("link", name="Back to credits").click()
        after = await page.get_by_test_id("balance").inner_text()
        assert micros_of(after) - micros_of(before) == 10_000 * MICROS
        purchases = page.get_by_test_id("transactions").locator(
            "tbody tr", has_text="Credit purchase"
        )
        await expect(purchases).to_have_count(1)
        async with resources.sessions() as s:
            entries = await ledger.list_entries(s, ctx.org.id, kind="purchase")
        assert [e.amount_micros for e in entries.entries] == [10_000 * MICROS]

        # A canceled checkout charges nothing and says so.
        await page.goto("/console/credits/cancel")
        await expect(page.get_by_test_id("checkout-status")).to_have_attribute(
            "data-state", "canceled"
        )
        await snap(page, "checkout-canceled")

        # Tasks: a finished image task with a failed callback, then the list.
        image = f"{shop.url}/static/img/favicon.svg"
        task_id = await add_task(resources, ctx.org.id, result={"urls": [image]},
                                 callback_url="https://hooks.example.com/x")  # fmt: skip
        await add_callback(resources, ctx.org.id, task_id)
        await page.goto("/console/tasks")
        await expect(page.get_by_test_id("tasks-table").locator("tbody tr")).to_have_count(1)
        await snap(page, "tasks")
        await page.get_by_test_id("tasks-table").locator("a.row-link").click()
        await expect(page.get_by_test_id("task-preview").locator("img")).to_be_visible()
        await expect(page.get_by_test_id("callbacks")).to_contain_text("task.succeeded")
        await snap(page, "task-detail")
