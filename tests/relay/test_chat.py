"""The billed chat relay end to end against the fake upstream over real HTTP."""

from __future__ import annotations

import asyncio
import json

import httpx
from sqlalchemy import text

from api.app import OxinfApp
from config.runtime import Resources
from tests.fakes.provider import FakeProvider, Fault
from tests.fixtures.conditions import eventually
from tests.fixtures.relay import (
    add_channel,
    add_model,
    balance,
    ledger_sums_hold,
    make_tenant,
    pending_holds,
)

HELLO = {"role": "user", "content": "hello there friend"}
# The fake counts whitespace words: 3 prompt tokens; it answers min(max_tokens, 8) words.
# gpt-test costs 150 / 600 credits per 1M tokens, professional tier, balanced power.
COST_3_IN_8_OUT = 3 * 150 + 8 * 600


async def _setup(resources: Resources, fake: FakeProvider, **key_fields: object):  # type: ignore[no-untyped-def]
    await add_model(resources, "gpt-test")
    await add_channel(resources, fake, "fake-openai", ["gpt-test"])
    return await make_tenant(resources, **key_fields)


async def _log(resources: Resources, request_id: str) -> dict[str, object]:
    async with resources.sessions() as s:
        row = (
            (await s.execute(text("SELECT * FROM request_logs WHERE id = :i"), {"i": request_id}))
            .mappings()
            .one()
        )
    return dict(row)


async def test_json_chat_is_billed_exactly(
    client: httpx.AsyncClient, resources: Resources, fake: FakeProvider
) -> None:
    tenant = await _setup(resources, fake)
    before, _ = await balance(resources, tenant.org_id)
    resp = await client.post(
        "/v1/chat/completions",
        json={"model": "gpt-test", "messages": [HELLO], "temperature": 0.2, "seed": 7},
        headers={**tenant.auth, "x-client-request-id": "client-123"},
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["model"] == "gpt-test"
    assert body["usage"] == {"prompt_tokens": 3, "completion_tokens": 8, "total_tokens": 11}
    assert resp.headers["x-oxinf-billing"] == "platform"
    after, available = await balance(resources, tenant.org_id)
    assert before - after == COST_3_IN_8_OUT
    assert available == after
    assert await pending_holds(resources) == 0
    await ledger_sums_hold(resources, tenant.org_id)

    upstream = fake.calls("/v1/chat/completions")
    assert len(upstream) == 1
    assert upstream[0].json["seed"] == 7  # unknown fields pass through
    assert upstream[0].headers["authorization"] == f"Bearer {fake.api_key}"

    log = await _log(resources, resp.headers["x-request-id"])
    assert (log["status"], log["cost_micros"], log["prompt_tokens"], log["completion_tokens"]) == (
        "succeeded", COST_3_IN_8_OUT, 3, 8,
    )  # fmt: skip
    assert log["client_request_id"] == "client-123"
    assert str(log["upstream_request_id"]).startswith("req_")


async def test_unknown_fields_reach_the_upstream_unchanged_even_beyond_64_bits(
    client: httpx.AsyncClient, resources: Resources, fake: FakeProvider
) -> None:
    tenant = await _setup(resources, fake)
    seed = 2**70 + 1  # a fast JSON parser alone would round this to a float
    extra = {"seed": seed, "metadata": {"trace": "12345678901234567890123", "n": -seed}}
    resp = await client.post(
        "/v1/chat/completions",
        json={"model": "gpt-test", "messages": [HELLO], **extra},
        headers=tenant.auth,
    )
    assert resp.status_code == 200, resp.text
    (sent,) = fake.calls("/v1/chat/completions")
    assert json.loads(sent.raw)["seed"] == seed
    assert json.loads(sent.raw)["metadata"] == extra["metadata"]


async def test_stream_forwards_chunks_and_bills_usage(
    client: httpx.AsyncClient, resources: Resources, fake: FakeProvider
) -> None:
    tenant = await _setup(resources, fake)
    before, _ = await balance(resources, tenant.org_id)
    for include_usage in (False, True):
        body = {"model": "gpt-test", "messages": [HELLO], "stream": True}
        if include_usage:
            body["stream_options"] = {"include_usage": True}
        resp = await client.post("/v1/chat/completions", json=body, headers=tenant.auth)
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        events = [line[6:] for line in resp.text.splitlines() if line.startswith("data: ")]
        assert events[-1] == "[DONE]"
        chunks = [json.loads(e) for e in events[:-1]]
        text_out = "".join(
            c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]
        )
        assert text_out.split() == [f"w{i}" for i in range(8)]
        usage_chunks = [c for c in chunks if not c["choices"]]
        assert len(usage_chunks) == (1 if include_usage else 0)
        # Upstream usage is always requested, whatever the client asked.
        assert fake.calls("/v1/chat/completions")[-1].json["stream_options"]["include_usage"]
    after, _ = await balance(resources, tenant.org_id)
    assert before - after == 2 * COST_3_IN_8_OUT
    assert await pending_holds(resources) == 0


async def test_refusals_move_no_money_and_call_no_upstream(
    client: httpx.AsyncClient, resources: Resources, fake: FakeProvider
) -> None:
    tenant = await _setup(resources, fake)
    cases = [
        ({"model": "nope", "messages": [HELLO]}, 400, "invalid_request"),
        ({"model": "gpt-test"}, 400, "invalid_request"),
        ({"model": "gpt-test", "messages": [HELLO], "max_tokens": -1}, 400, "invalid_request"),
        ({"model": "gpt-test", "messages": [HELLO], "stream": "yes"}, 400, "invalid_request"),
    ]
    for body, status, code in cases:
        resp = await client.post("/v1/chat/completions", json=body, headers=tenant.auth)
        assert resp.status_code == status, (body, resp.text)
        assert resp.json()["error"]["code"] == code
    limited = await make_tenant(resources, model_allowlist=["gpt-other"])
    denied = await client.post(
        "/v1/chat/completions",
        json={"model": "gpt-test", "messages": [HELLO]},
        headers=limited.auth,
    )
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "model_not_allowed"
    bad = await client.post(
        "/v1/chat/completions",
        content=b"{oops",
        headers={**tenant.auth, "content-type": "application/json"},
    )
    assert bad.status_code == 400
    unauth = await client.post(
        "/v1/chat/completions", json={"model": "gpt-test", "messages": [HELLO]}
    )
    assert unauth.status_code == 401 and unauth.json()["error"]["code"] == "invalid_api_key"
    assert fake.calls("/v1/") == []
    assert await balance(resources, tenant.org_id) == (1_000_000_000, 1_000_000_000)


async def test_insufficient_credits_is_402_before_dispatch(
    client: httpx.AsyncClient, resources: Resources, fake: FakeProvider
) -> None:
    tenant = await _setup(resources, fake)
    async with resources.sessions.begin() as s:
        await s.execute(
            text("UPDATE credit_accounts SET balance_micros = 100, available_micros = 100")
        )
        await s.execute(text("DELETE FROM ledger_entries"))
        await s.execute(
            text(
                "INSERT INTO ledger_entries (org_id, kind, amount_micros, balance_after_micros,"
                " idempotency_key, actor) VALUES (:o, 'purchase', 100, 100, 'x', 'test')"
            ),
            {"o": tenant.org_id},
        )
    resp = await client.post(
        "/v1/chat/completions", json={"model": "gpt-test", "messages": [HELLO]}, headers=tenant.auth
    )
    assert resp.status_code == 402
    assert resp.json()["error"]["code"] == "insufficient_credits"
    assert fake.calls("/v1/") == []
    assert await balance(resources, tenant.org_id) == (100, 100)
    log = await _log(resources, resp.headers["x-request-id"])
    assert (log["status"], log["http_status"], log["error_code"]) == (
        "failed", 402, "insufficient_credits",
    )  # fmt: skip


async def test_key_budget_is_402_budget_exhausted(
    client: httpx.AsyncClient, resources: Resources, fake: FakeProvider
) -> None:
    tenant = await _setup(resources, fake, budget_micros=1_000)
    resp = await client.post(
        "/v1/chat/completions", json={"model": "gpt-test", "messages": [HELLO]}, headers=tenant.auth
    )
    assert resp.status_code == 402
    assert resp.json()["error"]["code"] == "api_key_budget_exhausted"
    assert fake.calls("/v1/") == []


async def test_fallback_to_the_next_channel_then_503(
    client: httpx.AsyncClient, resources: Resources, fake: FakeProvider
) -> None:
    await add_model(resources, "gpt-test")
    first = await add_channel(resources, fake, "primary", ["gpt-test"], priority=10)
    await add_channel(resources, fake, "secondary", ["gpt-test"], priority=1)
    tenant = await make_tenant(resources)
    before, _ = await balance(resources, tenant.org_id)

    fake.add_fault(Fault(kind="status", status=503, path="/v1/chat/completions", times=1))
    ok = await client.post(
        "/v1/chat/completions", json={"model": "gpt-test", "messages": [HELLO]}, headers=tenant.auth
    )
    assert ok.status_code == 200, ok.text
    after, _ = await balance(resources, tenant.org_id)
    assert before - after == COST_3_IN_8_OUT
    async with resources.sessions() as s:
        attempts = (
            await s.execute(
                text("SELECT channel_id, outcome, http_status FROM request_attempts"
                     " WHERE request_id = :r ORDER BY id"),
                {"r": ok.headers["x-request-id"]},
            )
        ).all()  # fmt: skip
    assert [(a[1], a[2]) for a in attempts] == [("server", 503), ("ok", 200)]
    assert attempts[0][0] == first

    fake.add_fault(Fault(kind="status", status=500, path="/v1/chat/completions", times=2))
    down = await client.post(
        "/v1/chat/completions", json={"model": "gpt-test", "messages": [HELLO]}, headers=tenant.auth
    )
    assert down.status_code == 503
    assert down.json()["error"]["code"] == "service_unavailable"
    assert await balance(resources, tenant.org_id) == (after, after)
    assert await pending_holds(resources) == 0
    await ledger_sums_hold(resources, tenant.org_id)


async def test_non_retryable_upstream_error_returns_at_once(
    client: httpx.AsyncClient, resources: Resources, fake: FakeProvider
) -> None:
    await add_model(resources, "gpt-test")
    await add_channel(resources, fake, "a", ["gpt-test"], priority=2)
    await add_channel(resources, fake, "b", ["gpt-test"], priority=1)
    tenant = await make_tenant(resources)
    fake.add_fault(
        Fault(kind="status", status=400, path="/v1/chat/completions",
              body={"error": {"message": "context too long", "type": "invalid_request_error"}})
    )  # fmt: skip
    resp = await client.post(
        "/v1/chat/completions", json={"model": "gpt-test", "messages": [HELLO]}, headers=tenant.auth
    )
    # The client's mistake: a 400 the SDKs neither retry nor blame the gateway for.
    assert resp.status_code == 400
    assert resp.headers["x-should-retry"] == "false"
    err = resp.json()["error"]
    assert err["code"] == "invalid_request" and "context too long" in err["message"]
    assert err["type"] == "invalid_request_error"
    assert len(fake.calls("/v1/chat/completions")) == 1
    assert await pending_holds(resources) == 0


async def test_fallback_model_is_priced_as_itself(
    client: httpx.AsyncClient, resources: Resources, fake: FakeProvider
) -> None:
    await add_model(resources, "cheap-backup", input_per_mtok=100, output_per_mtok=200)
    await add_model(resources, "gpt-test", fallback_models=["cheap-backup"])
    await add_channel(resources, fake, "main", ["gpt-test"])
    await add_channel(resources, fake, "backup", ["cheap-backup"])
    tenant = await make_tenant(resources)
    before, _ = await balance(resources, tenant.org_id)
    fake.add_fault(Fault(kind="status", status=503, path="/v1/chat/completions", times=1))
    resp = await client.post(
        "/v1/chat/completions", json={"model": "gpt-test", "messages": [HELLO]}, headers=tenant.auth
    )
    assert resp.status_code == 200
    after, _ = await balance(resources, tenant.org_id)
    assert before - after == 3 * 100 + 8 * 200
    log = await _log(resources, resp.headers["x-request-id"])
    assert log["model"] == "cheap-backup"


async def test_a_fallback_model_outside_the_keys_allowlist_is_never_used(
    client: httpx.AsyncClient, resources: Resources, fake: FakeProvider
) -> None:
    await add_model(resources, "cheap-backup")
    await add_model(resources, "gpt-test", fallback_models=["cheap-backup"])
    await add_channel(resources, fake, "main", ["gpt-test"])
    await add_channel(resources, fake, "backup", ["cheap-backup"])
    tenant = await make_tenant(resources, model_allowlist=["gpt-test"])
    before = await balance(resources, tenant.org_id)
    fake.add_fault(Fault(kind="status", status=503, path="/v1/chat/completions", times=1))
    resp = await client.post(
        "/v1/chat/completions", json={"model": "gpt-test", "messages": [HELLO]}, headers=tenant.auth
    )
    assert resp.status_code == 503, resp.text
    assert resp.json()["error"]["code"] == "service_unavailable"
    assert len(fake.calls("/v1/chat/completions")) == 1  # only the allowed model was tried
    assert await balance(resources, tenant.org_id) == before


async def test_models_lists_what_the_key_may_use(
    client: httpx.AsyncClient, resources: Resources, fake: FakeProvider
) -> None:
    await add_model(resources, "gpt-test")
    await add_model(resources, "gpt-secret")
    tenant = await make_tenant(resources, model_allowlist=["gpt-test"])
    resp = await client.get("/v1/models", headers=tenant.auth)
    assert resp.status_code == 200
    assert [m["id"] for m in resp.json()["data"]] == ["gpt-test"]


async def test_refused_calls_count_against_the_rpm_window_and_429_comes_first(
    client: httpx.AsyncClient, resources: Resources, fake: FakeProvider
) -> None:
    """The limit is checked as if before planning: a refused plan is counted, and once the
    window is full a call gets 429 whatever else is wrong with it."""
    tenant = await _setup(resources, fake, rpm_limit=2)
    unknown = {"model": "nope", "messages": [HELLO]}
    good = {"model": "gpt-test", "messages": [HELLO]}
    first = await client.post("/v1/chat/completions", json=unknown, headers=tenant.auth)
    assert first.status_code == 400
    second = await client.post("/v1/chat/completions", json=good, headers=tenant.auth)
    assert second.status_code == 200 and second.headers["x-ratelimit-remaining"] == "0"
    for body in (unknown, good):
        refused = await client.post("/v1/chat/completions", json=body, headers=tenant.auth)
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert len(fake.calls("/v1/chat/completions")) == 1
    assert await pending_holds(resources) == 0
    await ledger_sums_hold(resources, tenant.org_id)


async def test_the_framework_route_answers_like_the_fast_one(
    app: OxinfApp, client: httpx.AsyncClient, resources: Resources, fake: FakeProvider
) -> None:
    """`OxinfApp` answers chat in front of FastAPI; FastAPI's own route (used under a mount
    prefix) must give the same answers, headers and error envelope."""
    tenant = await _setup(resources, fake)
    calls = [
        ({"model": "gpt-test", "messages": [HELLO]}, tenant.auth),
        ({"model": "nope", "messages": [HELLO]}, tenant.auth),
        ({"model": "gpt-test", "messages": [HELLO]}, {}),
    ]

    async def answers() -> list[tuple[int, object, str | None, bool]]:
        seen = []
        for body, headers in calls:
            resp = await client.post("/v1/chat/completions", json=body, headers=headers)
            payload = resp.json()
            shape = payload["usage"] if resp.status_code == 200 else payload["error"]["code"]
            seen.append(
                (resp.status_code, shape, resp.headers.get("x-oxinf-billing"),
                 resp.headers["x-request-id"].startswith("req_"))
            )  # fmt: skip
        return seen

    fast = await answers()
    assert app.fast_chat is not None
    app.fast_chat, kept = None, app.fast_chat
    try:
        framework = await answers()
    finally:
        app.fast_chat = kept
    assert fast == framework
    assert [f[0] for f in fast] == [200, 400, 401]
    assert len(fake.calls("/v1/chat/completions")) == 2
    await ledger_sums_hold(resources, tenant.org_id)


async def _lose_the_pending_hold(resources: Resources, org_id: object) -> int:
    """What a database crash does to a reserve that was committed without a WAL flush:
    the hold and its reservation are gone, as if they had never been made."""

    async def lose() -> int:
        async with resources.sessions.begin() as s:
            lost = (
                await s.execute(
                    text("DELETE FROM holds WHERE org_id = :o AND status = 'pending'"
                         " RETURNING amount_micros"),
                    {"o": org_id},
                )
            ).scalar()  # fmt: skip
            if lost is not None:
                await s.execute(
                    text("UPDATE credit_accounts SET available_micros = available_micros + :a"
                         " WHERE org_id = :o"),
                    {"a": lost, "o": org_id},
                )  # fmt: skip
                return int(lost)
        return 0

    return await eventually(lose, within=5, what="the call reserved")


async def test_a_reserve_lost_in_a_database_crash_is_still_billed(
    client: httpx.AsyncClient, resources: Resources, fake: FakeProvider
) -> None:
    tenant = await _setup(resources, fake, rpm_limit=100)
    before, _ = await balance(resources, tenant.org_id)
    body = {"model": "gpt-test", "messages": [HELLO]}

    fake.add_fault(Fault(kind="latency", delay_s=0.5, path="/v1/chat/completions"))
    call = asyncio.create_task(client.post("/v1/chat/completions", json=body, headers=tenant.auth))
    assert await _lose_the_pending_hold(resources, tenant.org_id) > 0
    resp = await call
    assert resp.status_code == 200, resp.text
    after, available = await balance(resources, tenant.org_id)
    assert before - after == COST_3_IN_8_OUT and available == after
    log = await _log(resources, resp.headers["x-request-id"])
    assert (log["status"], log["cost_micros"], log["uncollected_micros"]) == (
        "succeeded", COST_3_IN_8_OUT, 0,
    )  # fmt: skip

    # A call that then fails has nothing to release, and answers its own error.
    fake.add_fault(Fault(kind="status", status=400, delay_s=0.5, path="/v1/chat/completions"))
    call = asyncio.create_task(client.post("/v1/chat/completions", json=body, headers=tenant.auth))
    await _lose_the_pending_hold(resources, tenant.org_id)
    failed = await call
    assert failed.status_code == 400 and failed.json()["error"]["code"] == "invalid_request"
    assert await balance(resources, tenant.org_id) == (after, after)
    assert await pending_holds(resources) == 0
    await ledger_sums_hold(resources, tenant.org_id)
