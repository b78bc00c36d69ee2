"""Portal balance and transactions, operator grants, and the admin model catalog."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import text

from config.runtime import Resources
from domain.identity.bootstrap import bootstrap_admin
from tests.fixtures.portal import signup


@pytest.fixture
async def ops(client: httpx.AsyncClient, resources: Resources) -> dict[str, str]:
    await bootstrap_admin(
        resources.sessions, resources.identity, "ops@example.com", "ops-password-42"
    )
    login = await client.post(
        "/portal/v1/auth/login", json={"email": "ops@example.com", "password": "ops-password-42"}
    )
    return {"authorization": f"Bearer {login.json()['token']}"}


async def _grant(
    client: httpx.AsyncClient, ops: dict[str, str], org: uuid.UUID, **body: object
) -> httpx.Response:
    return await client.post(f"/admin/v1/orgs/{org}/credits", json=body, headers=ops)


async def test_grant_shows_in_balance_and_transactions(
    client: httpx.AsyncClient, ops: dict[str, str], resources: Resources
) -> None:
    user = await signup(client)
    resp = await _grant(
        client, ops, user.org_id, amount_micros=1_000_000_000, kind="bonus", reason="welcome"
    )
    assert resp.status_code == 201, resp.text
    assert resp.json()["balance"] == "1000"
    await _grant(
        client, ops, user.org_id, amount_micros=-194_000, kind="adjustment", reason="correction"
    )

    bal = (await client.get("/portal/v1/credits/balance", headers=user.headers())).json()
    assert bal["balance_micros"] == 999_806_000 and bal["balance"] == "999.806"
    assert bal["available"] == "999.806" and bal["held"] == "0" and bal["held_micros"] == 0
    assert bal["tier"] == "free" and bal["monthly_allocation"] == "0"
    reset = datetime.fromisoformat(bal["next_reset"])
    assert reset.day == 1 and reset > datetime.now(UTC)

    txs = (await client.get("/portal/v1/credits/transactions", headers=user.headers())).json()
    assert [(t["kind"], t["amount"], t["amount_micros"]) for t in txs["data"]] == [
        ("adjustment", "-0.194", -194_000),
        ("bonus", "1000", 1_000_000_000),
    ]
    page = (
        await client.get(
            "/portal/v1/credits/transactions", params={"limit": 1}, headers=user.headers()
        )
    ).json()
    assert len(page["data"]) == 1 and page["next_cursor"]
    rest = (
        await client.get(
            "/portal/v1/credits/transactions",
            params={"limit": 1, "cursor": page["next_cursor"]},
            headers=user.headers(),
        )
    ).json()
    assert rest["data"][0]["kind"] == "bonus" and rest["next_cursor"] is None
    only_bonus = (
        await client.get(
            "/portal/v1/credits/transactions", params={"kind": "bonus"}, headers=user.headers()
        )
    ).json()
    assert [t["kind"] for t in only_bonus["data"]] == ["bonus"]

    async with resources.sessions() as s:
        rows = await s.execute(
            text(
                "SELECT action, reason FROM audit_events WHERE action LIKE 'credits.%' ORDER BY id"
            )
        )
        assert [tuple(r) for r in rows] == [
            ("credits.bonus", "welcome"),
            ("credits.adjustment", "correction"),
        ]


async def test_reason_is_required(client: httpx.AsyncClient, ops: dict[str, str]) -> None:
    user = await signup(client)
    for body in (
        {"amount_micros": 5, "kind": "adjustment"},
        {"amount_micros": 5, "kind": "adjustment", "reason": ""},
        {"amount_micros": 5, "kind": "adjustment", "reason": "   "},
    ):
        resp = await client.post(f"/admin/v1/orgs/{user.org_id}/credits", json=body, headers=ops)
        assert resp.status_code == 400, body
    bal = (await client.get("/portal/v1/credits/balance", headers=user.headers())).json()
    assert bal["balance_micros"] == 0


async def test_negative_adjustment_cannot_overdraw(
    client: httpx.AsyncClient, ops: dict[str, str]
) -> None:
    user = await signup(client)
    await _grant(client, ops, user.org_id, amount_micros=10, kind="bonus", reason="r")
    resp = await _grant(client, ops, user.org_id, amount_micros=-11, kind="adjustment", reason="r")
    assert resp.status_code == 402
    error = resp.json()["error"]
    assert error["code"] == "insufficient_credits"
    assert (error["required_credits"], error["available_credits"]) == ("0.000011", "0.00001")


async def test_grant_is_idempotent_by_header(
    client: httpx.AsyncClient, ops: dict[str, str], resources: Resources
) -> None:
    user = await signup(client)
    headers = {**ops, "idempotency-key": "ticket-42"}
    body = {"amount_micros": 7_000_000, "kind": "bonus", "reason": "goodwill"}
    first = await client.post(f"/admin/v1/orgs/{user.org_id}/credits", json=body, headers=headers)
    second = await client.post(f"/admin/v1/orgs/{user.org_id}/credits", json=body, headers=headers)
    assert first.json()["replayed"] is False and second.json()["replayed"] is True
    assert first.json()["entry"]["id"] == second.json()["entry"]["id"]
    bal = (await client.get("/portal/v1/credits/balance", headers=user.headers())).json()
    assert bal["balance_micros"] == 7_000_000
    async with resources.sessions() as s:
        count = (
            await s.execute(
                text("SELECT count(*) FROM audit_events WHERE action = 'credits.bonus'")
            )
        ).scalar()
    assert count == 1


async def test_grants_are_operator_only_and_need_a_real_org(
    client: httpx.AsyncClient, ops: dict[str, str]
) -> None:
    user = await signup(client)
    body = {"amount_micros": 5, "kind": "bonus", "reason": "x"}
    denied = await client.post(
        f"/admin/v1/orgs/{user.org_id}/credits", json=body, headers=user.headers()
    )
    assert denied.status_code == 403
    missing = await client.post(f"/admin/v1/orgs/{uuid.uuid4()}/credits", json=body, headers=ops)
    assert missing.status_code == 404


async def test_transactions_are_per_org(client: httpx.AsyncClient, ops: dict[str, str]) -> None:
    alice = await signup(client)
    bob = await signup(client)
    await _grant(client, ops, alice.org_id, amount_micros=5, kind="bonus", reason="r")
    bobs = (await client.get("/portal/v1/credits/transactions", headers=bob.headers())).json()
    assert bobs["data"] == []
    claim = await client.get("/portal/v1/credits/balance", headers=bob.headers(alice.org_id))
    assert claim.status_code == 404


async def test_model_catalog_admin(
    client: httpx.AsyncClient, ops: dict[str, str], resources: Resources
) -> None:
    created = await client.post(
        "/admin/v1/models",
        json={
            "name": "meta-llama/llama-3.1-70b",
            "type": "chat",
            "max_output_tokens": 4096,
            "price": {"input_per_mtok": 520, "output_per_mtok": 750},
        },
        headers=ops,
    )
    assert created.status_code == 201, created.text
    assert created.json()["price"]["input_per_mtok"] == 520
    dup = await client.post(
        "/admin/v1/models", json={"name": "meta-llama/llama-3.1-70b", "type": "chat"}, headers=ops
    )
    assert dup.status_code == 409

    new_price = await client.post(
        "/admin/v1/models/meta-llama/llama-3.1-70b/prices",
        json={"input_per_mtok": 600, "output_per_mtok": 800},
        headers=ops,
    )
    assert new_price.status_code == 201, new_price.text
    listed = (await client.get("/admin/v1/models", headers=ops)).json()["data"]
    assert listed[0]["price"]["input_per_mtok"] == 600
    patched = await client.patch(
        "/admin/v1/models/meta-llama/llama-3.1-70b", json={"enabled": False}, headers=ops
    )
    assert patched.status_code == 200 and patched.json()["enabled"] is False
    got = await client.get("/admin/v1/models/meta-llama/llama-3.1-70b", headers=ops)
    assert got.json()["name"] == "meta-llama/llama-3.1-70b"
    bad = await client.post("/admin/v1/models", json={"name": "x", "type": "hologram"}, headers=ops)
    assert bad.status_code == 400
    assert (
        await client.delete("/admin/v1/models/meta-llama/llama-3.1-70b", headers=ops)
    ).status_code == 204
    assert (
        await client.get("/admin/v1/models/meta-llama/llama-3.1-70b", headers=ops)
    ).status_code == 404

    async with resources.sessions() as s:
        actions = list(
            (
                await s.execute(
                    text("SELECT action FROM audit_events WHERE target_type = 'model' ORDER BY id")
                )
            ).scalars()
        )
    assert actions == ["model.created", "model.price_changed", "model.updated", "model.deleted"]
    user = await signup(client)
    assert (await client.get("/admin/v1/models", headers=user.headers())).status_code == 403
