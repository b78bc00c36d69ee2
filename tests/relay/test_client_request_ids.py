"""A retry under the same `X-Client-Request-ID` is never charged twice: once an answer was
charged, the id is refused before anything is reserved or sent; two concurrent calls under
one id are charged once (the request log's unique index decides)."""

from __future__ import annotations

import asyncio
import json

import httpx
from sqlalchemy import text

from config.runtime import Resources
from tests.fakes.provider import FakeProvider, Fault
from tests.fixtures.relay import add_channel, add_model, balance, ledger_sums_hold, make_tenant

HELLO = {"role": "user", "content": "hello there friend"}
COST = 3 * 150 + 8 * 600


async def _charged(resources: Resources, client_id: str) -> list[int]:
    async with resources.sessions() as s:
        rows = await s.execute(
            text(
                "SELECT cost_micros FROM request_logs WHERE client_request_id = :c"
                " AND cost_micros > 0"
            ),
            {"c": client_id},
        )
        return [int(r[0]) for r in rows]


async def test_a_charged_answer_is_not_charged_again_on_retry(
    client: httpx.AsyncClient, resources: Resources, fake: FakeProvider
) -> None:
    await add_model(resources, "gpt-test")
    await add_channel(resources, fake, "c", ["gpt-test"])
    tenant = await make_tenant(resources)
    start, _ = await balance(resources, tenant.org_id)
    body = {"model": "gpt-test", "messages": [HELLO]}
    headers = {**tenant.auth, "x-client-request-id": "order-42"}

    first = await client.post("/v1/chat/completions", json=body, headers=headers)
    assert first.status_code == 200, first.text
    for stream in (False, True):
        retry = await client.post(
            "/v1/chat/completions", json={**body, "stream": stream}, headers=headers
        )
        assert retry.status_code == 409, retry.text
        error = retry.json()["error"]
        assert (error["code"], error["param"]) == ("conflict", "X-Client-Request-ID")
        assert first.headers["x-request-id"] in error["message"]
    assert len(fake.calls("/v1/chat/completions")) == 1, "a refused retry reached the upstream"
    assert await _charged(resources, "order-42") == [COST]

    # Another org may use the same id; a new id is a new call.
    other = await make_tenant(resources)
    for auth, client_id in ((other.auth, "order-42"), (tenant.auth, "order-43")):
        resp = await client.post(
            "/v1/chat/completions", json=body, headers={**auth, "x-client-request-id": client_id}
        )
        assert resp.status_code == 200, resp.text
    end, _ = await balance(resources, tenant.org_id)
    assert start - end == 2 * COST
    await ledger_sums_hold(resources, tenant.org_id)


async def test_an_uncharged_attempt_can_be_retried_under_its_id(
    client: httpx.AsyncClient, resources: Resources, fake: FakeProvider
) -> None:
    await add_model(resources, "gpt-test")
    await add_channel(resources, fake, "c", ["gpt-test"])
    tenant = await make_tenant(resources)
    headers = {**tenant.auth, "x-client-request-id": "retry-me"}
    body = {"model": "gpt-test", "messages": [HELLO]}
    fake.add_fault(Fault(kind="status", status=500, path="/v1/chat/completions", times=1))
    failed = await client.post("/v1/chat/completions", json=body, headers=headers)
    assert failed.status_code == 503, failed.text
    retried = await client.post("/v1/chat/completions", json=body, headers=headers)
    assert retried.status_code == 200, retried.text
    assert await _charged(resources, "retry-me") == [COST]

    too_long = await client.post(
        "/v1/chat/completions", json=body, headers={**tenant.auth, "x-client-request-id": "x" * 201}
    )
    assert too_long.status_code == 400, too_long.text
    assert too_long.json()["error"]["param"] == "X-Client-Request-ID"
    await ledger_sums_hold(resources, tenant.org_id)


async def test_concurrent_calls_under_one_id_are_charged_once(
    client: httpx.AsyncClient, resources: Resources, fake: FakeProvider
) -> None:
    await add_model(resources, "gpt-test")
    await add_channel(resources, fake, "c", ["gpt-test"])
    tenant = await make_tenant(resources)
    start, _ = await balance(resources, tenant.org_id)
    headers = {**tenant.auth, "x-client-request-id": "twice-at-once"}
    # Both pass the check before either is charged: the upstream is slow to answer.
    fake.add_fault(Fault(kind="latency", delay_s=0.5, path="/v1/chat/completions", times=2))
    json_call = client.post(
        "/v1/chat/completions", json={"model": "gpt-test", "messages": [HELLO]}, headers=headers
    )
    stream_call = client.post(
        "/v1/chat/completions",
        json={"model": "gpt-test", "messages": [HELLO], "stream": True},
        headers=headers,
    )
    answers = await asyncio.gather(json_call, stream_call)
    await resources.relay.drain()
    assert len(fake.calls("/v1/chat/completions")) == 2
    plain, streamed = answers
    events = [ln[6:] for ln in streamed.text.splitlines() if ln.startswith("data: ")]
    stream_ok = events[-1] == "[DONE]"
    if plain.status_code == 200:  # the JSON call settled first: the stream ends refused
        assert not stream_ok
        assert json.loads(events[-1])["error"]["code"] == "conflict"
    else:
        assert plain.status_code == 409 and stream_ok, (plain.text, events[-1])
    assert await _charged(resources, "twice-at-once") == [COST]
    end, available = await balance(resources, tenant.org_id)
    assert start - end == COST and available == end
    await ledger_sums_hold(resources, tenant.org_id)
