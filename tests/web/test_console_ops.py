"""The ops console in a real Chromium: the support timeline from an upstream id (with a
Temporal UI that really opens), credit grants that reach the balance and the audit log,
every page's screenshot, and a 403 for anyone who is not a platform operator."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi.routing import APIRoute
from playwright.async_api import Page, expect
from sqlalchemy import text
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from config.runtime import Resources
from config.temporal import TemporalHandle
from tests.fakes.provider import FakeProvider, Fault
from tests.fixtures.browser import OpenPage, sign_in, snap
from tests.fixtures.conditions import eventually
from tests.fixtures.relay import MICROS, add_channel, add_model, free_port, make_tenant
from tests.fixtures.tasks import add_jobs_channel, add_media_model, running_worker
from tests.fixtures.temporal import BIN_DIR
from tests.portal.helpers import HELLO
from tests.relay.conftest import _reset_fake, fake  # noqa: F401
from tests.tasks.conftest import _reset_media_fake, media_fake  # noqa: F401
from tests.web.ops_helpers import OPERATOR_EMAIL, OPERATOR_PASSWORD, make_operator
from web.mount import ROUTERS as MOUNTED
from web.nav import PAGES
from web.pages.ops import ROUTERS as OPS_ROUTERS
from worker import ensure_schedules

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


@dataclass
class TemporalWithUi:
    env: WorkflowEnvironment
    ui_url: str


@pytest.fixture(scope="module")
async def temporal_ui() -> AsyncIterator[TemporalWithUi]:
    """A Temporal dev server with its web UI, so the console's links can be followed."""
    port = free_port()
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=str(BIN_DIR / "temporal"),
        dev_server_log_level="error",
        ui=True,
        ui_port=port,
    )
    yield TemporalWithUi(env, f"http://127.0.0.1:{port}")
    await env.shutdown()


@pytest.fixture
async def on_temporal(
    resources: Resources, temporal_ui: TemporalWithUi
) -> AsyncIterator[TemporalWithUi]:
    """The app and a worker on that server, with the console pointed at its UI."""
    queue = f"ops-{uuid.uuid4()}"
    saved = resources.temporal, resources.settings
    resources.settings = resources.settings.model_copy(
        update={"task_queue": queue, "temporal_ui_url": temporal_ui.ui_url}
    )
    resources.temporal = TemporalHandle(resources.settings, temporal_ui.env.client)
    try:
        async with running_worker(temporal_ui.env.client, resources, queue):
            yield temporal_ui
    finally:
        resources.temporal, resources.settings = saved


async def sign_in_operator(open_page: OpenPage, resources: Resources) -> Page:
    await make_operator(resources)
    page = await open_page()
    await sign_in(page, OPERATOR_EMAIL, OPERATOR_PASSWORD)
    await expect(page).to_have_url(re.compile(r"/console$"))
    return page


async def events_of(page: Page) -> list[str]:
    return (
        await page.get_by_test_id("timeline")
        .locator("li")
        .evaluate_all("items => items.map(i => i.dataset.event)")
    )


async def test_operator_finds_failed_calls_by_upstream_ids(
    open_page: OpenPage,
    resources: Resources,
    fake: FakeProvider,  # noqa: F811
    media_fake: FakeProvider,  # noqa: F811
    on_temporal: TemporalWithUi,
    client: httpx.AsyncClient,
) -> None:
    # A chat call whose first upstream attempt fails (503), answered by the next channel.
    await add_model(resources, "gpt-ops")
    await add_channel(resources, fake, "primary", ["gpt-ops"], priority=10)
    await add_channel(resources, fake, "backup", ["gpt-ops"], priority=0)
    tenant = await make_tenant(resources)
    fake.add_fault(Fault(kind="status", status=503, path="/v1/chat/completions", times=1))
    answer = await client.post(
        "/v1/chat/completions", json={"model": "gpt-ops", "messages": [HELLO]}, headers=tenant.auth
    )
    assert answer.status_code == 200, answer.text
    request_id = answer.headers["x-request-id"]
    # A media task the upstream fails, run by a worker on the Temporal dev server.
    await add_media_model(resources, "img-ops", "image")
    await add_jobs_channel(resources, media_fake, "jobs", ["img-ops"])
    submitted = await client.post(
        "/v1/tasks",
        json={"type": "image", "model": "img-ops",
              "input": {"prompt": "a fox", "fake_outcome": "failed"}},
        headers=tenant.auth,
    )  # fmt: skip
    assert submitted.status_code == 202, submitted.text
    task_id = submitted.json()["id"]

    async with resources.sessions() as s:
        failed_upstream_id, cost = (
            await s.execute(
                text(
                    "SELECT a.upstream_request_id, l.cost_micros FROM request_attempts a"
                    " JOIN request_logs l ON l.id = a.request_id"
                    " WHERE a.request_id = :r AND a.outcome = 'server'"
                ),
                {"r": request_id},
            )
        ).one()
    assert failed_upstream_id and cost > 0

    async def task_failed() -> str | None:
        async with resources.sessions() as s:
            row = (
                await s.execute(
                    text("SELECT status, upstream_job_id FROM tasks WHERE id = :t"),
                    {"t": task_id},
                )
            ).one()
        return str(row[1]) if row[0] == "failed" and row[1] else None

    job_id = await eventually(task_failed, within=30, what="the task failed upstream")

    page = await sign_in_operator(open_page, resources)
    await page.get_by_role("navigation", name="Console").get_by_role("link", name="Ops").click()
    await (
        page.get_by_role("navigation", name="Ops console")
        .get_by_role("link", name="Request timeline")
        .click()
    )
    await expect(page.get_by_role("heading", name="Request timeline")).to_be_visible()
    await snap(page, "ops-lookup")

    await page.get_by_role("searchbox").fill(failed_upstream_id)
    await page.get_by_role("button", name="Find").click()
    await expect(page).to_have_url(re.compile(rf"/console/ops/requests/{request_id}$"))
    events = await events_of(page)
    for must in ("attempt.server", "attempt.ok", "hold.reserved", "hold.settled", "ledger.debit"):
        assert must in events, events
    assert events.index("hold.reserved") < events.index("attempt.server")
    assert events.index("attempt.server") < events.index("attempt.ok")
    assert events.index("attempt.ok") < events.index("ledger.debit")
    server = page.locator('li[data-event="attempt.server"]')
    await expect(server).to_contain_text(failed_upstream_id)
    await expect(page.locator('li[data-event="ledger.debit"]')).to_contain_text(
        f"-{cost // MICROS}." if cost % MICROS else f"-{cost // MICROS} credits"
    )
    await expect(page.get_by_text("No workflow ran for this request")).to_be_visible()
    await snap(page, "ops-timeline-request")

    # The failed task, by the upstream job id the provider gave it.
    await page.goto(f"/console/ops/requests?q={job_id}")
    await expect(page).to_have_url(re.compile(rf"/console/ops/tasks/{task_id}$"))
    events = await events_of(page)
    assert events[0] == "task.created", events
    assert "workflow_execution_started" in events and "task.failed" in events, events
    assert events[-1] == "workflow_execution_completed", events
    order = [
        "hold.reserved",
        "upstream.submitting",
        "upstream.accepted",
        "hold.voided",
        "task.failed",
    ]
    assert [e for e in events if e in order] == order, events
    link = page.get_by_test_id("temporal-link")
    expected = f"{on_temporal.ui_url}/namespaces/default/workflows/task-{task_id}"
    await expect(link).to_have_attribute("href", expected)
    await snap(page, "ops-timeline-task")

    # The link opens that workflow in the Temporal UI.
    ui = await open_page()
    response = await ui.goto(expected)
    assert response is not None and response.ok
    await expect(ui.get_by_text(f"task-{task_id}").first).to_be_visible(timeout=20_000)

    # The tasks page lists it as failed; the schedules come from Temporal.
    await ensure_schedules(on_temporal.env.client, resources.settings)
    await page.goto("/console/ops/tasks")
    await expect(page.get_by_test_id("tasks")).to_contain_text(task_id)
    schedules = page.get_by_test_id("schedules")
    await expect(schedules.locator('tr[data-schedule="monthly-allocations"]')).to_contain_text(
        "active"
    )
    await expect(schedules).not_to_contain_text("unavailable")
    await snap(page, "ops-tasks")


async def test_credit_grant_reaches_balance_and_audit_log(
    open_page: OpenPage, resources: Resources
) -> None:
    tenant = await make_tenant(resources, credits_micros=100 * MICROS)
    page = await sign_in_operator(open_page, resources)
    await page.goto("/console/ops")
    await snap(page, "ops-orgs")
    email = (await _email_of(resources, tenant.user_id)).split("@")[0]
    await page.get_by_role("searchbox").fill(email)
    await page.get_by_role("button", name="Search").click()
    users = page.get_by_role("region", name="Users")
    await expect(users.locator("tbody tr")).to_have_count(1)
    await snap(page, "ops-search")
    await users.get_by_role("link", name="Personal").click()
    await expect(page).to_have_url(re.compile(rf"/console/ops/orgs/{tenant.org_id}$"))
    await expect(page.get_by_test_id("balance")).to_have_text("100")

    form = page.get_by_test_id("grant-form")
    await form.get_by_label("Kind").select_option("bonus")
    await form.get_by_label("Credits").fill("250.000001")
    await form.get_by_role("button", name="Record").click()  # no reason yet
    await expect(form.get_by_label("Reason")).to_be_focused()  # the browser asks for it
    await form.get_by_label("Reason").fill("Outage credit, ticket 4411")
    await form.get_by_role("button", name="Record").click()
    await expect(page.get_by_role("status")).to_contain_text("Bonus of 250.000001 credits")
    await expect(page.get_by_test_id("balance")).to_have_text("350.000001")
    await expect(page.get_by_test_id("ledger").locator("tbody tr").first).to_contain_text(
        "Outage credit, ticket 4411"
    )
    audit = page.get_by_test_id("audit").locator("tbody tr").first
    await expect(audit).to_contain_text("credits.bonus")
    await expect(audit).to_contain_text("Outage credit, ticket 4411")
    await snap(page, "ops-org")

    # A refused amount keeps what was typed and says why, beside the field.
    await form.get_by_label("Kind").select_option("adjustment")
    await form.get_by_label("Credits").fill("1.0000001")
    await form.get_by_label("Reason").fill("too precise")
    await form.get_by_role("button", name="Record").click()
    await expect(page.get_by_text("Credit amounts have at most 6 decimals.")).to_be_visible()
    await expect(form.get_by_label("Reason")).to_have_value("too precise")
    await expect(page.get_by_test_id("balance")).to_have_text("350.000001")
    await snap(page, "ops-org-error")


async def _email_of(resources: Resources, user_id: uuid.UUID) -> str:
    async with resources.sessions() as s:
        found = await s.execute(text("SELECT email FROM users WHERE id = :u"), {"u": user_id})
        return str(found.scalar_one())


async def test_models_channels_pages(
    open_page: OpenPage,
    resources: Resources,
    fake: FakeProvider,  # noqa: F811
) -> None:
    page = await sign_in_operator(open_page, resources)
    await page.goto("/console/ops/models")
    await page.get_by_text("New model").click()
    new = page.get_by_test_id("new-model")
    await new.get_by_label("Name", exact=True).fill("gpt-new")
    await new.get_by_label("Input", exact=True).fill("150")
    await new.get_by_label("Output", exact=True).fill("600")
    await new.get_by_role("button", name="Create model").click()
    await expect(page.get_by_role("status")).to_contain_text("Model gpt-new created.")
    row = page.locator('tr[data-model="gpt-new"]')
    await expect(row).to_contain_text("in 150 · out 600")

    await page.get_by_text("Change price of gpt-new").click()
    change = page.locator('form[action="/console/ops/models/gpt-new/prices"]')
    await change.get_by_label("Input", exact=True).fill("120")
    await change.get_by_label("Output", exact=True).fill("480")
    await change.get_by_label("Effective from (UTC)").fill("2031-01-01T00:00")
    await change.get_by_role("button", name="Add price version").click()
    await expect(page.get_by_role("status")).to_contain_text("effective 2031-01-01 00:00 UTC")
    await expect(row).to_contain_text("in 150 · out 600")  # still in force until then
    await row.get_by_text("2 versions").click()
    await expect(row.get_by_text("scheduled")).to_be_visible()
    await snap(page, "ops-models")
    await row.get_by_role("button", name="Disable").click()
    await expect(page.locator('tr[data-model="gpt-new"]')).to_contain_text("disabled")

    await page.goto("/console/ops/channels")
    await page.get_by_text("New channel").click()
    new = page.get_by_test_id("new-channel")
    await new.get_by_label("Name", exact=True).fill("fake-upstream")
    await new.get_by_label("Base URL").fill(fake.base_url + "/v1")
    await new.get_by_label("API key").fill(fake.api_key)
    await new.get_by_label("Models", exact=True).fill("gpt-new")
    await new.get_by_role("button", name="Create channel").click()
    await expect(page.get_by_role("status")).to_contain_text("Channel fake-upstream created.")
    assert fake.api_key not in await page.content()
    channel = page.locator('tr[data-channel="fake-upstream"]')
    await channel.get_by_role("button", name="Test").click()
    result = page.get_by_test_id("probe-result")
    await expect(result).to_contain_text("OK")
    await expect(result).to_contain_text("answered in")
    await snap(page, "ops-channels")

    await channel.get_by_role("link", name="Edit").click()
    await expect(page.get_by_label("API key", exact=True)).to_have_value("")  # write-only
    await expect(page.get_by_text("A key is stored. Leave blank to keep it")).to_be_visible()
    assert fake.api_key not in await page.content()
    await page.get_by_label("Weight").fill("0")
    await page.get_by_label("Speaks the Responses API").check()
    await page.get_by_role("button", name="Save").click()
    await expect(page.get_by_label("Weight")).to_have_attribute("aria-invalid", "true")
    await expect(page.get_by_label("Speaks the Responses API")).to_be_checked()  # kept
    await snap(page, "ops-channel-edit")
    await page.get_by_label("Weight").fill("5")
    await page.get_by_role("button", name="Save").click()
    await expect(page.get_by_role("status")).to_contain_text("Channel fake-upstream saved.")
    async with resources.sessions() as s:
        caps = (await s.execute(text("SELECT capabilities FROM channels"))).scalar_one()
    assert caps == ["responses_api"]
    await expect(channel.locator('td[data-label="Weight"]')).to_have_text("5")
    await channel.get_by_role("button", name="Test").click()  # the kept secret still works
    await expect(page.get_by_test_id("probe-result")).to_contain_text("OK")


# --- operators only ------------------------------------------------------------------------

OPS_GETS = (
    "/console/ops",
    "/console/ops/orgs/{org_id}",
    "/console/ops/models",
    "/console/ops/channels",
    "/console/ops/channels/{channel_id}",
    "/console/ops/requests",
    "/console/ops/requests/{request_id}",
    "/console/ops/tasks",
    "/console/ops/tasks/{task_id}",
)
OPS_POSTS = (
    "/console/ops/orgs/{org_id}/credits",
    "/console/ops/models",
    "/console/ops/models/{name}/prices",
    "/console/ops/models/{name}/enabled",
    "/console/ops/channels",
    "/console/ops/channels/{channel_id}",
    "/console/ops/channels/{channel_id}/enabled",
    "/console/ops/channels/{channel_id}/test",
)


def test_every_ops_route_is_in_the_403_lists() -> None:
    ops_pages = {p.key for p in PAGES if p.operator}
    assert ops_pages == {"ops", "ops_models", "ops_channels", "ops_requests", "ops_tasks"}
    assert all(any(r is m for m in MOUNTED) for r in OPS_ROUTERS)
    routes = {
        (method, re.sub(r"\{(\w+)(:path)?\}", r"{\1}", route.path))
        for router in OPS_ROUTERS
        for route in router.routes
        if isinstance(route, APIRoute)
        for method in route.methods
    }
    assert all(path.startswith("/console/ops") for _, path in routes)
    assert routes == {("GET", u) for u in OPS_GETS} | {("POST", u) for u in OPS_POSTS}


@pytest.mark.parametrize(
    ("method", "template"), [("GET", u) for u in OPS_GETS] + [("POST", u) for u in OPS_POSTS]
)
async def test_non_operator_gets_403(
    open_page: OpenPage, resources: Resources, method: str, template: str
) -> None:
    tenant = await make_tenant(resources)
    await add_model(resources, "gpt-private")
    async with resources.sessions.begin() as s:
        channel_id = (await s.execute(text(
            "INSERT INTO channels (id, name, provider, base_url, models)"
            " VALUES (gen_random_uuid(), 'secret-ch', 'openai', 'https://api.example.com/v1',"
            " '[\"gpt-private\"]'::jsonb) RETURNING id"
        ))).scalar_one()  # fmt: skip
    url = template.format(
        org_id=tenant.org_id, channel_id=channel_id, name="gpt-private",
        request_id="req_" + uuid.uuid4().hex[:24], task_id=uuid.uuid4(),
    )  # fmt: skip
    page = await open_page()
    await sign_in(page, await _email_of(resources, tenant.user_id))
    await expect(page).to_have_url(re.compile(r"/console$"))
    nav = page.get_by_role("navigation", name="Console")
    await expect(nav.get_by_role("link", name="Ops")).to_have_count(0)
    if method == "GET":
        response = await page.goto(url)
        assert response is not None and response.status == 403
        await expect(page.get_by_role("heading", name="You cannot open this page")).to_be_visible()
        await expect(page.get_by_text("is for platform operators")).to_be_visible()
        if template == "/console/ops":
            await snap(page, "ops-forbidden")
    else:
        token = await page.locator('meta[name="csrf-token"]').get_attribute("content")
        assert token
        sent = await page.request.post(
            url, form={"csrf_token": token, "kind": "bonus", "amount": "1", "reason": "x",
                       "key": "k" * 32, "enabled": "true", "name": "x", "provider": "openai"},
        )  # fmt: skip
        assert sent.status == 403, (url, sent.status)
    async with resources.sessions() as s:
        changed = (await s.execute(text(
            "SELECT (SELECT count(*) FROM audit_events WHERE actor_kind = 'operator')"
            " + (SELECT count(*) FROM ledger_entries WHERE kind = 'bonus')"
        ))).scalar_one()  # fmt: skip
    assert changed == 0
