"""The console in a real Chromium: sign-up to sign-in, the org switcher, CSRF, error pages."""

from __future__ import annotations

import re
import uuid

from playwright.async_api import Page, expect

from config.runtime import Resources
from domain.audit.service import SYSTEM
from domain.enterprise import service as enterprise
from domain.identity import service as identity
from domain.identity.service import OrgContext
from tests.fixtures.browser import OpenPage, new_email, sign_in, sign_up, snap
from tests.fixtures.portal import PASSWORD


async def sign_out(page: Page) -> None:
    await page.locator("details.menu summary").click()
    await page.get_by_role("button", name="Sign out").click()


async def test_sign_up_checklist_sign_out_sign_in(page: Page) -> None:
    response = await page.goto("/")
    assert response is not None and response.ok
    await expect(page).to_have_url(re.compile(r"/console/sign-in$"))
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await snap(page, "sign-in")

    await page.get_by_role("link", name="Create an account").click()
    await expect(page).to_have_url(re.compile(r"/console/sign-up$"))
    await snap(page, "sign-up")

    email = new_email("walker")
    await sign_up(page, email, password="short")
    password_field = page.get_by_label("Password")
    await expect(password_field).to_have_attribute("aria-invalid", "true")
    await expect(page.get_by_text("Password must be at least 10 characters.")).to_be_visible()
    await expect(page.get_by_label("Email")).to_have_value(email)  # kept for the retry
    await expect(password_field).to_be_focused()
    await snap(page, "sign-up-error")

    await password_field.fill(PASSWORD)
    await page.get_by_role("button", name="Create account").click()
    await expect(page).to_have_url(re.compile(r"/console$"))
    await expect(page.get_by_role("status")).to_contain_text("Welcome to 0xinf!")
    checklist = page.get_by_test_id("checklist")
    await expect(checklist.get_by_role("heading", name="Get started")).to_be_visible()
    await expect(checklist).to_contain_text("0 of 4 done")
    await expect(checklist.locator("li.step")).to_have_count(4)
    await expect(page.get_by_test_id("available")).to_have_text("0")
    # The reset date was rendered in UTC and rewritten in the viewer's zone by console.js.
    reset = page.locator("time[data-local]").first
    await expect(reset).not_to_have_text(re.compile(r"^\d{4}-\d{2}-\d{2}"))
    await expect(page.get_by_role("tab", name="Python")).to_have_attribute("aria-selected", "true")
    await page.get_by_role("tab", name="Python").press("ArrowRight")
    await expect(page.get_by_role("tab", name="curl")).to_be_focused()
    await expect(page.locator("#panel-curl")).to_be_visible()
    await snap(page, "home")
    await snap(page, "home-dark", dark=True)

    await sign_out(page)
    await expect(page).to_have_url(re.compile(r"/console/sign-in$"))
    await expect(page.get_by_role("status")).to_contain_text("You are signed out.")
    await snap(page, "signed-out")
    response = await page.goto("/console")  # the session is gone, not just the cookie
    await expect(page).to_have_url(re.compile(r"/console/sign-in\?next=%2Fconsole$"))

    await sign_in(page, email, password="wrong-password-1")
    await expect(page.get_by_role("alert")).to_contain_text("Email or password is wrong.")
    await expect(page.get_by_label("Password")).to_be_focused()
    await snap(page, "sign-in-error")

    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(re.compile(r"/console$"))
    switcher = page.get_by_label("Organization")
    await expect(switcher.locator("option")).to_have_text(["Personal · owner"])


async def test_org_switcher_and_member_cannot_reach_admin_page(
    open_page: OpenPage, resources: Resources
) -> None:
    owner_email, member_email = new_email("owner"), new_email("member")
    async with resources.sessions.begin() as s:
        owner = await identity.create_user(s, resources.identity, owner_email, PASSWORD)
        await identity.create_user(s, resources.identity, member_email, PASSWORD)
        org_id = await identity.create_org(s, "Acme Labs", owner.id)
        ctx = await identity.org_context(s, owner, org_id, None)
        await enterprise.add_member(s, OrgContext(owner, ctx.org, "owner", SYSTEM),
                                    email=member_email, role="member")  # fmt: skip

    page = await open_page()
    await sign_in(page, member_email)
    await expect(page).to_have_url(re.compile(r"/console$"))
    nav = page.get_by_role("navigation", name="Console")
    await expect(nav.get_by_role("link", name="Members")).to_be_visible()  # owns "Personal"

    switcher = page.get_by_label("Organization")
    await expect(switcher.locator("option")).to_have_text(
        ["Personal · owner", "Acme Labs · member"]
    )
    await switcher.select_option(label="Acme Labs · member")  # submits on change
    await expect(page.locator(".eyebrow")).to_have_text("Acme Labs")
    await expect(switcher).to_have_value(str(org_id))
    await expect(nav.get_by_role("link", name="Members")).to_have_count(0)
    await snap(page, "home-member")

    response = await page.goto("/console/members")
    assert response is not None and response.status == 403
    await expect(page.get_by_role("heading", name="You cannot open this page")).to_be_visible()
    await expect(page.get_by_text("for this organization's owners and admins")).to_be_visible()
    await expect(page.locator(".request-id code")).to_have_text(response.headers["x-request-id"])
    await snap(page, "forbidden")

    owner_page = await open_page()
    await sign_in(owner_page, owner_email)
    await owner_page.get_by_label("Organization").select_option(label="Acme Labs · owner")
    await (
        owner_page.get_by_role("navigation", name="Console")
        .get_by_role("link", name="Members")
        .click()
    )
    await expect(owner_page).to_have_url(re.compile(r"/console/members$"))
    rows = owner_page.locator("table tbody tr")
    await expect(rows).to_have_count(2)
    await expect(rows.filter(has_text=member_email)).to_contain_text("member")
    await snap(owner_page, "members")


async def test_form_without_csrf_token_is_refused_and_changes_nothing(page: Page) -> None:
    await sign_up(page, new_email("csrf"))
    await expect(page).to_have_url(re.compile(r"/console$"))

    # A sign-out form stripped of its token, as a forged cross-site form would arrive.
    await page.locator("form[action='/console/sign-out'] input[name=csrf_token]").evaluate(
        "el => el.remove()"
    )
    await page.locator("details.menu summary").click()
    await page.get_by_role("button", name="Sign out").click()
    await expect(
        page.get_by_role("heading", name="This form could not be accepted")
    ).to_be_visible()
    await expect(page.get_by_text("not sent from an open console page")).to_be_visible()
    await snap(page, "csrf-refused")

    # A token from somewhere else is refused the same way, also on the org switcher.
    forged = await page.request.post(
        "/console/orgs/switch",
        form={"org_id": str(uuid.uuid4()), "csrf_token": "0" * 64},
        max_redirects=0,
    )
    assert forged.status == 403

    # Still signed in: the refused sign-out revoked nothing.
    response = await page.goto("/console")
    assert response is not None and response.status == 200
    await expect(page.get_by_role("heading", name="Overview")).to_be_visible()


async def test_unknown_console_url_shows_the_404_page_with_request_id(page: Page) -> None:
    response = await page.goto("/console/no-such-page")
    assert response is not None and response.status == 404
    assert response.headers["content-type"].startswith("text/html")
    await expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
    await expect(page.locator(".request-id code")).to_have_text(response.headers["x-request-id"])
    await snap(page, "not-found")
    await page.get_by_role("link", name="Go to the console").click()
    await expect(page).to_have_url(re.compile(r"/console/sign-in\?next=%2Fconsole$"))


async def test_vendored_chart_library_draws_under_the_page_policy(page: Page) -> None:
    """uPlot (for the credit and usage charts) runs under the console's CSP: the page
    fixture fails the test on any policy violation the browser reports."""
    await sign_up(page, new_email("chart"))
    await expect(page).to_have_url(re.compile(r"/console$"))
    await page.evaluate(
        """() => new Promise((resolve, reject) => {
            const css = document.createElement("link");
            css.rel = "stylesheet";
            css.href = "/static/vendor/uplot-1.6.32/uPlot.min.css";
            document.head.append(css);
            const js = document.createElement("script");
            js.src = "/static/vendor/uplot-1.6.32/uPlot.iife.min.js";
            js.onload = resolve;
            js.onerror = reject;
            document.head.append(js);
        })"""
    )
    drawn = await page.evaluate(
        """() => {
            const box = document.createElement("div");
            document.querySelector("main").append(box);
            const chart = new uPlot(
                {width: 400, height: 200, series: [{}, {label: "credits", stroke: "blue"}]},
                [[1, 2, 3], [5, 1, 4]],
                box,
            );
            return box.querySelectorAll("canvas").length === 1 && chart.series.length === 2;
        }"""
    )
    assert drawn
