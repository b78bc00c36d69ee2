"""The credits, usage, requests and tasks pages over HTTP: exact figures, filters, paging,
CSV, CSRF, and 404 for another org's request or task."""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
from datetime import UTC, datetime, timedelta

import httpx

from config.runtime import Resources
from domain.ledger import service as ledger
from tests.fixtures.console import csrf_of, sign_up
from tests.web.billing_data import add_callback, add_log, add_task, new_key, own_ctx

MICROS = 1_000_000


def chart_of(html: str, chart_id: str) -> dict[str, object]:
    found = re.search(
        rf'<script type="application/json" id="{chart_id}">(.*?)</script>', html, re.S
    )
    assert found, f"no chart {chart_id}"
    return dict(json.loads(found.group(1)))


async def test_credits_page_shows_exact_balance_period_usage_chart_and_transactions(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    await sign_up(client)
    ctx = await own_ctx(resources, client)
    async with resources.sessions.begin() as s:
        await ledger.credit(
            s, ctx.org.id, 1_234_567_891, kind="purchase", key=f"t:{ctx.org.id}", actor="test",
            reason="Welcome pack",
        )  # fmt: skip
    key = await new_key(resources, ctx, "chart key")
    await add_log(resources, ctx.org.id, key_id=key, model="gpt-a", cost_micros=1_500_001)
    await add_log(resources, ctx.org.id, key_id=key, model="gpt-b", cost_micros=2)
    await add_log(
        resources,
        ctx.org.id,
        model="gpt-a",
        cost_micros=7 * MICROS,
        at=datetime.now(UTC) - timedelta(days=40),
    )  # fmt: skip  (outside the chart's 30 days)

    page = await client.get("/console/credits")
    assert page.status_code == 200, page.text
    html = page.text
    assert '<p class="stat-value" data-testid="balance">1,234.567891</p>' in html
    assert "Welcome pack" in html and "+1,234.567891" in html
    chart = chart_of(html, "chart-credits")
    days = chart["days"]
    assert isinstance(days, list) and len(days) == 30
    assert days[-1] == datetime.now(UTC).date().isoformat()
    series = {s["label"]: s for s in chart["series"]}  # type: ignore[attr-defined]
    assert series["Total"]["micros"][-1] == 1_500_003
    assert series["Total"]["text"][-1] == "1.500003"
    assert series["gpt-a"]["text"][-1] == "1.500001"
    assert sum(series["Total"]["micros"]) == 1_500_003  # the 40-day-old call is not drawn
    assert chart["points"] == 1
    # This period's usage is exact too (the old call may fall in this month or not).
    used = re.search(r'data-testid="period-used">([^<]+)<', html)
    assert used and used.group(1) in ("1.500003", "8.500003")
    # An owner may buy; this server has no Stripe, so the page says so instead of a button.
    assert "Buying is not set up here" in html
    assert "Credit information" in html


async def test_member_sees_credits_but_not_buying(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    owner_email = await sign_up(client)
    owner = await own_ctx(resources, client)
    member_email = await sign_up(client)
    from domain.enterprise import service as enterprise

    async with resources.sessions.begin() as s:
        await enterprise.add_member(s, owner, email=member_email, role="member")
    switch = await client.get("/console")
    token = csrf_of(switch.text)
    await client.post(
        "/console/orgs/switch", data={"org_id": str(owner.org.id), "csrf_token": token}
    )
    page = await client.get("/console/credits")
    assert page.status_code == 200
    assert "Auto-recharge" not in page.text and "Buy credits" not in page.text
    assert owner_email not in page.text


async def test_auto_recharge_form_needs_csrf_and_explains_refusals(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    await sign_up(client)
    ctx = await own_ctx(resources, client)
    page = await client.get("/console/credits")
    token = csrf_of(page.text)
    form = {"enabled": "true", "threshold": "500", "package_id": "starter_10"}

    refused = await client.post("/console/credits/auto-recharge", data=form)
    assert refused.status_code == 403
    assert "This form could not be accepted" in refused.text

    saved = await client.post("/console/credits/auto-recharge", data={**form, "csrf_token": token})
    assert saved.status_code == 303  # refused by the service: no saved card yet
    again = await client.get("/console/credits")
    assert "Auto-recharge not saved: no saved payment method" in again.text
    off = await client.post(
        "/console/credits/auto-recharge",
        data={"threshold": "12.5", "package_id": "pro_50", "csrf_token": token},
    )
    assert off.status_code == 303
    async with resources.sessions() as s:
        from domain.payments import repository as payments_repo

        stored = await payments_repo.get_billing(s, ctx.org.id)
    assert stored is not None
    assert (stored.auto_recharge, stored.recharge_threshold_micros) == (False, 12_500_000)
    assert stored.recharge_package_id == "pro_50"
    assert 'value="12.5"' in (await client.get("/console/credits")).text


async def test_usage_page_groups_and_csv_match_exactly(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    await sign_up(client)
    ctx = await own_ctx(resources, client)
    key_a = await new_key(resources, ctx, "=HYPERLINK(evil)")
    key_b = await new_key(resources, ctx, "batch jobs")
    await add_log(resources, ctx.org.id, key_id=key_a, model="gpt-a", cost_micros=1_000_001)
    await add_log(resources, ctx.org.id, key_id=key_b, model="gpt-a", cost_micros=2_000_000)
    await add_log(
        resources, ctx.org.id, key_id=key_b, model="gpt-b", cost_micros=3, status="failed"
    )

    by_model = await client.get("/console/usage", params={"group_by": "model"})
    assert by_model.status_code == 200, by_model.text
    assert 'data-testid="usage-cost">3.000004<' in by_model.text
    rows = re.findall(r'<td data-label="Model">([^<]+)<', by_model.text)
    assert rows == ["gpt-a", "gpt-b"]
    assert chart_of(by_model.text, "chart-usage")["points"] == 1

    csv_resp = await client.get("/console/usage.csv", params={"group_by": "key"})
    assert csv_resp.status_code == 200
    assert csv_resp.headers["content-type"].startswith("text/csv")
    assert "attachment" in csv_resp.headers["content-disposition"]
    table = list(csv.DictReader(io.StringIO(csv_resp.text)))
    by_group = {r["group"]: r for r in table}
    prefix_a = next(g for g in by_group if g.startswith("'=HYPERLINK"))  # never a formula
    assert by_group[prefix_a]["cost_credits"] == "1.000001"
    batch = next(g for g in by_group if g.startswith("batch jobs"))
    assert (by_group[batch]["requests"], by_group[batch]["failed_requests"]) == ("2", "1")
    assert by_group[batch]["cost_micros"] == "2000003"

    old = await client.get("/console/usage", params={"from": "2020-01-01", "to": "2020-01-31"})
    assert "No usage in this range" in old.text
    bad = await client.get("/console/usage", params={"from": "2026-13-01"})
    assert bad.status_code == 400 and "must be a date" in bad.text


async def test_requests_filters_paging_and_safe_trace(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    await sign_up(client)
    ctx = await own_ctx(resources, client)
    key = await new_key(resources, ctx, "pager")
    base = datetime.now(UTC) - timedelta(hours=1)
    ids = [
        await add_log(resources, ctx.org.id, key_id=key, at=base + timedelta(seconds=i))
        for i in range(55)
    ]
    failed = await add_log(
        resources, ctx.org.id, model="gpt-x", status="failed", error_code="upstream_error",
        error_message="upstream said: account acct_SECRET on channel-eu-7 is suspended",
        channel_id=uuid.uuid4(), client_request_id="my-own-id-1",
    )  # fmt: skip

    first = await client.get("/console/requests")
    shown = re.findall(r'href="/console/requests/(req_[0-9a-f]+)"', first.text)
    assert shown[0] == failed and len(shown) == 50
    older = re.search(r'href="/console/requests\?(cursor=[^"]+)" rel="next"', first.text)
    assert older
    second = await client.get(f"/console/requests?{older.group(1).replace('&amp;', '&')}")
    rest = re.findall(r'href="/console/requests/(req_[0-9a-f]+)"', second.text)
    assert set(shown) | set(rest) == set(ids) | {failed} and not set(shown) & set(rest)

    only_failed = await client.get("/console/requests", params={"status": "failed"})
    assert re.findall(r'href="/console/requests/(req_[0-9a-f]+)"', only_failed.text) == [failed]
    by_key = await client.get("/console/requests", params={"key": str(key), "model": "gpt-test"})
    assert len(re.findall(r'href="/console/requests/req_', by_key.text)) == 50
    none = await client.get("/console/requests", params={"from": "2020-01-01", "to": "2020-01-02"})
    assert "No requests match" in none.text

    detail = await client.get(f"/console/requests/{failed}")
    assert detail.status_code == 200
    assert "The model provider returned an error" in detail.text
    assert "my-own-id-1" in detail.text
    assert "acct_SECRET" not in detail.text and "channel-eu-7" not in detail.text

    # Another org's person gets the same 404 as for an id that does not exist.
    await sign_up(client)
    for path in (f"/console/requests/{failed}", "/console/requests/req_nope"):
        other = await client.get(path)
        assert other.status_code == 404, path
        assert "Page not found" in other.text


async def test_tasks_list_detail_previews_callbacks_and_cross_org_404(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    await sign_up(client)
    ctx = await own_ctx(resources, client)
    image = await add_task(resources, ctx.org.id)
    audio = await add_task(
        resources, ctx.org.id, type="audio", result={"urls": ["https://cdn.example.com/a.mp3"]},
        callback_url="https://hooks.example.com/x",
    )  # fmt: skip
    failed = await add_task(
        resources, ctx.org.id, type="video", status="failed", result=None,
        error={"code": "upstream_error", "message": "The provider could not make this video."},
        charged_micros=0, refunded_micros=40_000,
    )  # fmt: skip
    await add_callback(resources, ctx.org.id, audio)

    listing = await client.get("/console/tasks")
    assert listing.status_code == 200
    for task_id in (image, audio, failed):
        assert f'href="/console/tasks/{task_id}"' in listing.text
    assert "0.04" in listing.text
    only_failed = await client.get("/console/tasks", params={"status": "failed"})
    assert str(image) not in only_failed.text and str(failed) in only_failed.text

    shown = await client.get(f"/console/tasks/{image}")
    assert '<img src="https://cdn.example.com/cat.png"' in shown.text
    assert "media-src 'self' https:" in shown.headers["content-security-policy"]
    heard = await client.get(f"/console/tasks/{audio}")
    assert '<audio controls preload="none" src="https://cdn.example.com/a.mp3"' in heard.text
    assert "HTTP 500 from the callback URL" in heard.text and "task.succeeded" in heard.text
    lost = await client.get(f"/console/tasks/{failed}")
    assert "The provider could not make this video." in lost.text
    assert 'data-testid="task-refunded">0.04<' in lost.text

    await sign_up(client)
    for path in (f"/console/tasks/{image}", f"/console/tasks/{uuid.uuid4()}", "/console/tasks/x"):
        other = await client.get(path)
        assert other.status_code == 404, path


async def test_checkout_form_needs_csrf_and_stripe_and_api_return_pages_lead_here(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    await sign_up(client)
    ctx = await own_ctx(resources, client)
    refused = await client.post("/console/credits/checkout", data={"package_id": "starter_10"})
    assert refused.status_code == 403
    token = csrf_of((await client.get("/console/credits")).text)
    unconfigured = await client.post(
        "/console/credits/checkout", data={"package_id": "starter_10", "csrf_token": token}
    )
    assert unconfigured.status_code == 503 and "Stripe is not configured" in unconfigured.text
    async with resources.sessions() as s:
        from domain.payments import repository as payments_repo

        assert await payments_repo.list_payments(s, ctx.org.id, limit=5) == []

    back = await client.get("/billing/success?session_id=cs_123")
    assert back.status_code == 303
    assert back.headers["location"] == "/console/credits/success?session_id=cs_123"
    unknown = await client.get(back.headers["location"])  # not this org's payment
    assert 'data-state="unknown"' in unknown.text
    canceled = await client.get((await client.get("/billing/cancel")).headers["location"])
    assert 'data-state="canceled"' in canceled.text and "Nothing was charged" in canceled.text
