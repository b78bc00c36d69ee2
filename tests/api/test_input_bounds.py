"""Inputs the database cannot store are a 400 naming the field, never a 500 (issue 21).

Each row once reached PostgreSQL and failed there: NUL characters, integers past INTEGER
or BIGINT, `null` for a NOT NULL column, a name longer than its column. Where money is
involved the balance is checked unchanged.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from config.runtime import Resources
from domain.ledger import service as ledger
from tests.fixtures.portal import PortalUser, signup

NUL = "a\x00b"
BIG64 = 2**63
BIG32 = 2**31
MICROS = 1_000_000


@dataclass
class World:
    customer: PortalUser
    operator: PortalUser
    api_key: str
    ids: dict[str, str]

    def headers(self, who: str) -> dict[str, str]:
        if who == "operator":
            return self.operator.headers()
        if who == "key":
            return {"authorization": f"Bearer {self.api_key}"}
        return self.customer.headers(self.customer.org_id)


@pytest.fixture
async def world(client: httpx.AsyncClient, resources: Resources) -> World:
    customer = await signup(client)
    operator = await signup(client)
    async with resources.sessions.begin() as s:
        await s.execute(
            text("UPDATE users SET is_operator = true WHERE id = :u"), {"u": operator.user_id}
        )
        await ledger.credit(
            s, customer.org_id, 1_000 * MICROS, kind="purchase", key="seed", actor="test"
        )
    h = customer.headers(customer.org_id)

    async def made(path: str, body: dict[str, Any], headers: dict[str, str] = h) -> str:
        resp = await client.post(path, json=body, headers=headers)
        assert resp.status_code == 201, resp.text
        return str(resp.json().get("id") or resp.json()["model"]["name"])

    ids = {
        "key_id": await made("/portal/v1/api-keys", {"name": "target"}),
        "department_id": await made("/enterprise/v1/departments", {"name": "R&D"}),
        "cost_center_id": await made("/enterprise/v1/cost-centers", {"code": "CC-1"}),
        "org_id": str(customer.org_id),
        "name": await made(
            "/admin/v1/models",
            {"name": "priced", "type": "chat", "price": {"input_per_mtok": 1}},
            operator.headers(),
        ),
    }
    resp = await client.post("/portal/v1/api-keys", json={"name": "relay"}, headers=h)
    return World(customer, operator, resp.json()["key"], ids)


async def balance(resources: Resources, org_id: uuid.UUID) -> tuple[int, int]:
    async with resources.sessions() as s:
        found = await ledger.balance(s, org_id)
    return found.balance_micros, found.available_micros


DEEP = "[" * 50_000 + "]" * 50_000
# (id, who, method, path, request, status, param)
CASES: list[tuple[str, str, str, str, dict[str, Any], int, str | None]] = [
    ("key-scopes-null", "customer", "PATCH", "/portal/v1/api-keys/{key_id}",
     {"json": {"scopes": None}}, 400, "scopes"),
    ("key-log-content-null", "customer", "PATCH", "/portal/v1/api-keys/{key_id}",
     {"json": {"log_content": None}}, 400, "log_content"),
    ("key-name-null", "customer", "PATCH", "/portal/v1/api-keys/{key_id}",
     {"json": {"name": None}}, 400, "name"),
    ("key-allowlist-nul", "customer", "POST", "/portal/v1/api-keys",
     {"json": {"name": "k", "model_allowlist": [NUL]}}, 400, "model_allowlist.0"),
    ("key-allowlist-nul-patch", "customer", "PATCH", "/portal/v1/api-keys/{key_id}",
     {"json": {"model_allowlist": [NUL]}}, 400, "model_allowlist.0"),
    ("policy-allowlist-nul", "customer", "PATCH", "/enterprise/v1/policies/{department_id}",
     {"json": {"model_allowlist": [NUL]}}, 400, "model_allowlist.0"),
    ("policy-content-logging-null", "customer", "PATCH",
     "/enterprise/v1/policies/{department_id}", {"json": {"content_logging": None}}, 400,
     "content_logging"),
    ("cost-center-code-nul", "customer", "POST", "/enterprise/v1/cost-centers",
     {"json": {"code": NUL}}, 400, "code"),
    ("cost-center-name-nul", "customer", "PATCH", "/enterprise/v1/cost-centers/{cost_center_id}",
     {"json": {"name": NUL}}, 400, "name"),
    ("cost-center-code-null", "customer", "PATCH",
     "/enterprise/v1/cost-centers/{cost_center_id}", {"json": {"code": None}}, 400, "code"),
    ("department-name-nul", "customer", "POST", "/enterprise/v1/departments",
     {"json": {"name": NUL}}, 400, "name"),
    ("user-search-nul", "operator", "GET", "/admin/v1/users", {"params": {"q": NUL}}, 400, "q"),
    ("org-search-nul", "operator", "GET", "/admin/v1/orgs", {"params": {"q": NUL}}, 400, "q"),
    ("model-name-nul", "operator", "POST", "/admin/v1/models",
     {"json": {"name": NUL, "type": "chat"}}, 400, "name"),
    ("model-name-81", "operator", "POST", "/admin/v1/models",
     {"json": {"name": "m" * 81, "type": "chat"}}, 400, "name"),
    ("model-path-nul", "operator", "GET", "/admin/v1/models/a%00b", {}, 400, "name"),
    ("fallback-name-nul", "operator", "POST", "/admin/v1/models",
     {"json": {"name": "m1", "type": "chat", "fallback_models": [NUL]}}, 400,
     "fallback_models.0"),
    ("channel-models-nul", "operator", "POST", "/admin/v1/channels",
     {"json": {"name": "c", "provider": "demo", "models": [NUL]}}, 400, "models.0"),
    ("chat-model-nul", "key", "POST", "/v1/chat/completions",
     {"json": {"model": NUL, "messages": [{"role": "user", "content": "hi"}]}}, 400, "model"),
    ("chat-model-81", "key", "POST", "/v1/chat/completions",
     {"json": {"model": "m" * 81, "messages": [{"role": "user", "content": "hi"}]}}, 400,
     "model"),
    ("chat-client-request-id-201", "key", "POST", "/v1/chat/completions",
     {"json": {"model": "priced", "messages": [{"role": "user", "content": "hi"}]},
      "headers": {"x-client-request-id": "r" * 201}}, 400, "X-Client-Request-ID"),
    ("task-model-nul", "key", "POST", "/v1/tasks",
     {"json": {"type": "image", "model": NUL, "input": {"prompt": "x"}}}, 400, "model"),
    ("task-input-nul", "key", "POST", "/v1/tasks",
     {"json": {"type": "image", "model": "priced", "input": {"prompt": "x", "style": NUL}}},
     400, "input.style"),
    ("shim-model-nul", "key", "POST", "/v1/images/generations",
     {"json": {"model": NUL, "prompt": "x"}}, 400, "model"),
    ("shim-prompt-nul", "key", "POST", "/v1/images/generations",
     {"json": {"model": "priced", "prompt": NUL}}, 400, "prompt"),
    # A shim names its caller's fields, never the task's (`input.n`, `input.text`).
    ("shim-images-n-11", "key", "POST", "/v1/images/generations",
     {"json": {"model": "priced", "prompt": "x", "n": 11}}, 400, "n"),
    ("shim-images-size-long", "key", "POST", "/v1/images/generations",
     {"json": {"model": "priced", "prompt": "x", "size": "s" * 65}}, 400, "size"),
    ("shim-speech-no-input", "key", "POST", "/v1/audio/speech",
     {"json": {"model": "priced", "voice": "alloy"}}, 400, "input"),
    ("shim-speech-empty-input", "key", "POST", "/v1/audio/speech",
     {"json": {"model": "priced", "input": " "}}, 400, "input"),
    ("shim-speech-format", "key", "POST", "/v1/audio/speech",
     {"json": {"model": "priced", "input": "hi", "response_format": "midi"}}, 400,
     "response_format"),
    ("shim-video-seconds-0", "key", "POST", "/v1/videos",
     {"json": {"model": "priced", "prompt": "x", "seconds": 0}}, 400, "seconds"),
    ("credit-reason-nul", "operator", "POST", "/admin/v1/orgs/{org_id}/credits",
     {"json": {"amount_micros": 1, "kind": "bonus", "reason": NUL}}, 400, "reason"),
    ("credit-amount-2^63", "operator", "POST", "/admin/v1/orgs/{org_id}/credits",
     {"json": {"amount_micros": BIG64, "kind": "bonus", "reason": "r"}}, 400, "amount_micros"),
    ("recharge-threshold-2^63", "customer", "PUT", "/portal/v1/credits/auto-recharge",
     {"json": {"enabled": False, "threshold_micros": BIG64}}, 400, "threshold_micros"),
    ("key-budget-2^63", "customer", "POST", "/portal/v1/api-keys",
     {"json": {"name": "k", "budget_micros": BIG64}}, 400, "budget_micros"),
    ("users-offset-2^63", "operator", "GET", "/admin/v1/users",
     {"params": {"offset": BIG64}}, 400, "offset"),
    ("orgs-offset-2^63", "operator", "GET", "/admin/v1/orgs",
     {"params": {"offset": BIG64}}, 400, "offset"),
    ("ledger-cursor-2^63", "customer", "GET", "/portal/v1/credits/transactions",
     {"params": {"cursor": str(BIG64)}}, 400, "cursor"),
    ("ledger-cursor-superscript", "customer", "GET", "/portal/v1/credits/transactions",
     {"params": {"cursor": "\u00b2"}}, 400, "cursor"),
    ("ledger-since-before-year-1-utc", "customer", "GET", "/portal/v1/credits/transactions",
     {"params": {"since": "0001-01-01T00:00:00+14:00"}}, 400, "since"),
    ("audit-until-before-year-1-utc", "customer", "GET", "/enterprise/v1/audit",
     {"params": {"until": "0001-01-01T00:00:00+14:00"}}, 400, "until"),
    ("price-effective-before-year-1-utc", "operator", "POST", "/admin/v1/models/{name}/prices",
     {"json": {"effective_from": "0001-01-01T00:00:00+14:00"}}, 400, "effective_from"),
    ("shim-nested-past-python", "key", "POST", "/v1/images/generations",
     {"content": '{"model": "priced", "prompt": ' + DEEP + "}",
      "headers": {"content-type": "application/json"}}, 400, None),
    ("requests-cursor-far-future", "customer", "GET", "/portal/v1/requests",
     {"params": {"cursor": "9" * 30 + "_x"}}, 400, "cursor"),
    ("model-max-output-2^31", "operator", "POST", "/admin/v1/models",
     {"json": {"name": "m2", "type": "chat", "max_output_tokens": BIG32}}, 400,
     "max_output_tokens"),
    ("model-context-2^31", "operator", "PATCH", "/admin/v1/models/{name}",
     {"json": {"context_window": BIG32}}, 400, "context_window"),
    ("model-enabled-null", "operator", "PATCH", "/admin/v1/models/{name}",
     {"json": {"enabled": None}}, 400, "enabled"),
    ("channel-priority-2^31", "operator", "POST", "/admin/v1/channels",
     {"json": {"name": "c", "provider": "demo", "priority": BIG32}}, 400, "priority"),
    ("model-price-2^63", "operator", "POST", "/admin/v1/models",
     {"json": {"name": "m3", "type": "chat", "price": {"input_per_mtok": BIG64}}}, 400,
     "price.input_per_mtok"),
    ("price-version-2^63", "operator", "POST", "/admin/v1/models/{name}/prices",
     {"json": {"output_per_mtok": BIG64}}, 400, "output_per_mtok"),
    ("unit-price-2^63", "operator", "POST", "/admin/v1/models/{name}/prices",
     {"json": {"unit_price_micros": BIG64, "unit": "image"}}, 400, "unit_price_micros"),
    ("price-negative", "operator", "POST", "/admin/v1/models/{name}/prices",
     {"json": {"cached_input_per_mtok": -1}}, 400, "cached_input_per_mtok"),
    ("price-past-the-cap", "operator", "POST", "/admin/v1/models/{name}/prices",
     {"json": {"input_per_mtok": 10**9 + 1}}, 400, "input_per_mtok"),
    ("channel-weight-0", "operator", "POST", "/admin/v1/channels",
     {"json": {"name": "c", "provider": "demo", "weight": 0}}, 400, "weight"),
    ("budget-limit-0", "customer", "POST", "/enterprise/v1/budgets",
     {"json": {"name": "b", "scope": "department", "scope_id": "{department_id}",
               "limit_micros": 0, "mode": "hard"}}, 400, "limit_micros"),
    ("budget-limit-2^63", "customer", "POST", "/enterprise/v1/budgets",
     {"json": {"name": "b", "scope": "department", "scope_id": "{department_id}",
               "limit_micros": BIG64, "mode": "hard"}}, 400, "limit_micros"),
    ("org-name-null", "customer", "PATCH", "/enterprise/v1/org", {"json": {"name": None}}, 400,
     "name"),
    ("audit-action-nul", "customer", "GET", "/enterprise/v1/audit",
     {"params": {"action": NUL}}, 400, "action"),
    ("byok-label-nul", "customer", "PUT", "/portal/v1/byok",
     {"json": {"provider": "openai", "api_key": "sk-" + "a" * 40, "label": NUL}}, 400,
     "label"),
    ("byok-key-nul", "customer", "PUT", "/portal/v1/byok",
     {"json": {"provider": "openai", "api_key": "sk-" + "a" * 20 + NUL}}, 400, "api_key"),
    ("ops-request-nul", "operator", "GET", "/ops/v1/requests/a%00b", {}, 400, "request_id"),
    ("lone-surrogate", "customer", "POST", "/enterprise/v1/departments",
     {"content": b'{"name": "\\udc80"}', "headers": {"content-type": "application/json"}},
     400, "name"),
]  # fmt: skip


def _fill(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str):
        return re.sub(r"\{(\w+)\}", lambda m: ids.get(m.group(1), m.group(0)), value)
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, ids) for v in value]
    return value


@pytest.mark.parametrize(
    ("who", "method", "path", "request_", "status", "param"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
async def test_unstorable_input_is_a_400_naming_the_field(
    client: httpx.AsyncClient,
    resources: Resources,
    world: World,
    who: str,
    method: str,
    path: str,
    request_: dict[str, Any],
    status: int,
    param: str | None,
) -> None:
    kwargs = _fill(request_, world.ids)
    headers = {**world.headers(who), **kwargs.pop("headers", {})}
    before = await balance(resources, world.customer.org_id)
    resp = await client.request(method, path.format(**world.ids), headers=headers, **kwargs)
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert (err["code"], err.get("param")) == ("invalid_request", param), err
    assert set(err) >= {"type", "code", "message", "request_id"}
    assert "\x00" not in err["message"]
    assert await balance(resources, world.customer.org_id) == before


async def test_a_credit_past_bigint_is_a_409_that_moves_no_money(
    client: httpx.AsyncClient, resources: Resources, world: World
) -> None:
    """Two grants of 2^62 sum past BIGINT. The first is fine; the second would have failed
    in PostgreSQL ("bigint out of range"). It is the account's state that refuses it (the
    same grant to a smaller balance succeeds), so 409 conflict, not 400; nothing moves and
    no ledger entry or audit event is written."""
    url = f"/admin/v1/orgs/{world.customer.org_id}/credits"
    grant = {"amount_micros": 2**62, "kind": "bonus", "reason": "big"}
    first = await client.post(url, json=grant, headers=world.operator.headers())
    assert first.status_code == 201, first.text
    before = await balance(resources, world.customer.org_id)
    async with resources.sessions() as s:
        entries = (await s.execute(text("SELECT count(*) FROM ledger_entries"))).scalar_one()
    second = await client.post(url, json=grant, headers=world.operator.headers())
    assert second.status_code == 409, second.text
    err = second.json()["error"]
    assert (err["code"], err["param"]) == ("conflict", "amount_micros")
    assert await balance(resources, world.customer.org_id) == before
    async with resources.sessions() as s:
        after = (await s.execute(text("SELECT count(*) FROM ledger_entries"))).scalar_one()
        audited = (
            await s.execute(text("SELECT count(*) FROM audit_events WHERE action LIKE 'credits.%'"))
        ).scalar_one()
    assert after == entries
    assert audited == 1


async def test_patch_nullability_matches_the_columns(
    client: httpx.AsyncClient, world: World
) -> None:
    """A nullable column's field clears with null; the others may only be left out."""
    url = f"/portal/v1/api-keys/{world.ids['key_id']}"
    h = world.headers("customer")
    set_ = await client.patch(url, json={"rpm_limit": 5, "budget_micros": 7}, headers=h)
    assert set_.status_code == 200, set_.text
    cleared = await client.patch(url, json={"rpm_limit": None, "budget_micros": None}, headers=h)
    assert cleared.status_code == 200, cleared.text
    assert (cleared.json()["rpm_limit"], cleared.json()["budget_micros"]) == (None, None)
    kept = await client.patch(url, json={}, headers=h)
    assert kept.json()["scopes"] == cleared.json()["scopes"]
    schema = (await client.get("/openapi.json")).json()["components"]["schemas"]["KeyPatch"]
    assert "anyOf" not in schema["properties"]["scopes"]  # documented as non-nullable
    assert {"type": "null"} in schema["properties"]["rpm_limit"]["anyOf"]


async def test_a_shims_messages_name_the_callers_fields(
    client: httpx.AsyncClient, world: World
) -> None:
    """Not the task's (`input.n`, `input.text`): a shim's caller never wrote those."""
    headers = world.headers("key")
    images = await client.post(
        "/v1/images/generations", headers=headers, json={"model": "priced", "prompt": "x", "n": 0}
    )
    speech = await client.post(
        "/v1/audio/speech", headers=headers, json={"model": "priced", "input": "x" * 100_001}
    )
    assert images.json()["error"]["message"] == "`n` must be an integer from 1 to 10"
    assert speech.json()["error"]["message"] == "`input` must be at most 100,000 characters"
