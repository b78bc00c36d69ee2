"""`/metrics` keeps every series it had before prometheus-client served it: the same names,
types and label names, and nothing else (no `_created` series, no process collectors); the
series added since (result-store copy failures, garbage-collector pauses) are listed too."""

from __future__ import annotations

import uuid

import httpx
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from sqlalchemy import text

from api.metrics import GAUGES
from config.runtime import Resources
from tests.fakes.provider import FakeProvider
from tests.fixtures.relay import add_channel, add_model, make_tenant
from tests.portal.helpers import HELLO

# As exposed (a counter's name with its `_total`): type and label names.
SERIES: dict[str, tuple[str, frozenset[str]]] = {
    "oxinf_http_requests_total": ("counter", frozenset({"method", "route", "code"})),
    "oxinf_http_request_duration_seconds": ("histogram", frozenset({"method", "route"})),
    "oxinf_pending_holds": ("gauge", frozenset()),
    "oxinf_pending_holds_micros": ("gauge", frozenset()),
    "oxinf_credit_accounts": ("gauge", frozenset()),
    "oxinf_credit_balance_micros": ("gauge", frozenset()),
    "oxinf_credit_available_micros": ("gauge", frozenset()),
    "oxinf_callback_failures_1h": ("gauge", frozenset()),
    "oxinf_tasks_24h": ("gauge", frozenset({"status"})),
    "oxinf_ledger_entries_1h": ("gauge", frozenset({"kind"})),
    "oxinf_ledger_amount_micros_1h": ("gauge", frozenset({"kind"})),
    "oxinf_task_upstream_orphans_total": ("counter", frozenset({"event"})),
    "oxinf_task_result_copy_failures_total": ("counter", frozenset()),
    "oxinf_relay_requests_5m": ("gauge", frozenset({"model", "status", "code"})),
    "oxinf_gc_pause_seconds": ("histogram", frozenset({"generation"})),
}
BUCKETS = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "5.0", "10.0",
           "30.0", "60.0", "+Inf"]  # fmt: skip


def _scraped(body: str) -> dict[str, tuple[str, list[Sample]]]:
    """Exposed name: (type, samples), read by prometheus-client's own parser."""
    out = {}
    for family in text_string_to_metric_families(body):
        name = family.name + ("_total" if family.type == "counter" else "")
        out[name] = (family.type, family.samples)
    return out


def _chat_calls(scraped: dict[str, tuple[str, list[Sample]]]) -> float:
    chat = {"method": "POST", "route": "/v1/chat/completions", "code": "200"}
    requests = scraped["oxinf_http_requests_total"][1]
    return sum(s.value for s in requests if s.labels == chat and s.name.endswith("_total"))


async def test_metrics_serves_the_same_series_as_before(
    client: httpx.AsyncClient, resources: Resources, fake: FakeProvider
) -> None:
    await add_model(resources, "gpt-test")
    await add_channel(resources, fake, "only", ["gpt-test"])
    tenant = await make_tenant(resources)
    before = _chat_calls(_scraped((await client.get("/metrics")).text))
    resp = await client.post(
        "/v1/chat/completions", json={"model": "gpt-test", "messages": [HELLO]}, headers=tenant.auth
    )
    assert resp.status_code == 200, resp.text
    async with resources.sessions.begin() as s:  # a task, so its gauge has a sample too
        await s.execute(
            text("INSERT INTO tasks (id, org_id, type, model, input)"
                 " VALUES (:id, :o, 'image', 'img', '{}'::jsonb)"),
            {"id": uuid.uuid4(), "o": tenant.org_id},
        )  # fmt: skip
    GAUGES.expire()

    scrape = await client.get("/metrics")
    assert scrape.status_code == 200
    assert scrape.headers["content-type"].startswith("text/plain; version=0.0.4")
    got = _scraped(scrape.text)
    assert {name: kind for name, (kind, _) in got.items()} == {
        name: kind for name, (kind, _) in SERIES.items()
    }
    for name, (_, samples) in got.items():
        assert samples, f"{name} has no sample"
        for sample in samples:
            assert set(sample.labels) - {"le"} == SERIES[name][1], sample
    assert _chat_calls(got) == before + 1  # the process's counter: other tests count too
    buckets = [
        s.labels["le"]
        for s in got["oxinf_http_request_duration_seconds"][1]
        if s.name.endswith("_bucket")
        and (s.labels["method"], s.labels["route"]) == ("POST", "/v1/chat/completions")
    ]
    assert buckets == BUCKETS
    orphans = {s.labels["event"]: s.value for s in got["oxinf_task_upstream_orphans_total"][1]}
    assert orphans == {"found": 0.0, "canceled": 0.0}
    by_model = [s for s in got["oxinf_relay_requests_5m"][1] if s.labels["model"] == "gpt-test"]
    assert [(s.labels["status"], s.labels["code"], s.value) for s in by_model] == [
        ("succeeded", "200", 1.0)
    ]
