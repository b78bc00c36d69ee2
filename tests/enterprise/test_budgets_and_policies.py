"""Departments, cost centers, department policies and budget policies over HTTP, enforced on
real billed chats through the fake upstream."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections import Counter

import httpx
from sqlalchemy import text

from config.runtime import Resources
from domain.ledger import service as ledger
from tests.enterprise.helpers import Org, add, audit_actions, make_entity, make_org
from tests.fakes.provider import FakeProvider
from tests.fixtures.portal import PortalUser, signup
from tests.fixtures.relay import MICROS, add_channel, add_model, ledger_sums_hold, pending_holds

HELLO = {"role": "user", "content": "hello there friend"}


async def _models(resources: Resources, fake: FakeProvider, *names: str) -> list[str]:
    """Fresh model names per test (the catalog is shared by the whole session)."""
    made = [f"{n}-{secrets.token_hex(3)}" for n in names]
    for name in made:
        await add_model(resources, name)
    await add_channel(resources, fake, f"ch-{secrets.token_hex(3)}", made)
    return made


async def _fund(resources: Resources, org_id: uuid.UUID, credits: int = 1_000) -> None:
    async with resources.sessions.begin() as s:
        await s.execute(text("UPDATE orgs SET tier = 'professional' WHERE id = :o"), {"o": org_id})
        await ledger.credit(
            s, org_id, credits * MICROS, kind="purchase", key=f"seed:{org_id}", actor="test"
        )


async def _key_id(
    client: httpx.AsyncClient, org: Org, user: PortalUser, **fields: object
) -> tuple[str, str]:
    """A new platform key made by `user` in `org`: (the key, its id)."""
    resp = await client.post(
        "/portal/v1/api-keys", json={"name": "k", **fields}, headers=org.h(user)
    )
    assert resp.status_code == 201, resp.text
    return str(resp.json()["key"]), str(resp.json()["id"])


async def _key(client: httpx.AsyncClient, org: Org, user: PortalUser, **fields: object) -> str:
    return (await _key_id(client, org, user, **fields))[0]


async def _chat(
    client: httpx.AsyncClient, key: str, model: str, max_tokens: int = 8
) -> httpx.Response:
    return await client.post(
        "/v1/chat/completions",
        json={"model": model, "messages": [HELLO], "max_tokens": max_tokens},
        headers={"authorization": f"Bearer {key}"},
    )


async def _member_in(client: httpx.AsyncClient, org: Org, **fields: str) -> PortalUser:
    user = await signup(client)
    resp = await add(client, org.id, org.admin, user, "member", **fields)
    assert resp.status_code == 201, resp.text
    return user


async def _budget(client: httpx.AsyncClient, org: Org, **fields: object) -> dict[str, object]:
    body = {"name": "b", "mode": "hard", **fields}
    resp = await client.post("/enterprise/v1/budgets", json=body, headers=org.h(org.admin))
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


async def _logged_cost(resources: Resources, org_id: uuid.UUID) -> int:
    async with resources.sessions() as s:
        return int(
            (
                await s.execute(
                    text(
                        "SELECT coalesce(sum(cost_micros), 0) FROM request_logs WHERE org_id = :o"
                    ),
                    {"o": org_id},
                )
            ).scalar_one()
        )


# --- structure -----------------------------------------------------------------------------


async def test_departments_and_cost_centers_lifecycle(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    org = await make_org(client)
    admin = org.h(org.admin)
    dept = await make_entity(client, org, "departments", "Research")
    dup = await client.post(
        "/enterprise/v1/departments", json={"name": " research "}, headers=admin
    )
    assert dup.status_code == 409 and dup.json()["error"]["code"] == "conflict"
    blank = await client.post("/enterprise/v1/departments", json={"name": "  "}, headers=admin)
    assert blank.status_code == 400
    renamed = await client.patch(
        f"/enterprise/v1/departments/{dept}", json={"name": "R&D"}, headers=admin
    )
    assert renamed.status_code == 200 and renamed.json()["name"] == "R&D"

    cc = await make_entity(client, org, "cost-centers", "CC-1")
    named = await client.patch(
        f"/enterprise/v1/cost-centers/{cc}", json={"name": "Platform"}, headers=admin
    )
    assert named.json() == {**named.json(), "code": "CC-1", "name": "Platform"}
    # Finance reads cost centers (they head invoice lines) but not departments.
    assert (await client.get("/enterprise/v1/cost-centers", headers=org.h(org.finance))).is_success
    assert (
        await client.get("/enterprise/v1/departments", headers=org.h(org.finance))
    ).status_code == 403

    # In use: a member and a budget keep it; once both are gone it can go.
    user = await _member_in(client, org, department_id=dept, cost_center_id=cc)
    budget = await _budget(client, org, scope="department", scope_id=dept, limit_micros=MICROS)
    for kind, ident in (("departments", dept), ("cost-centers", cc)):
        busy = await client.delete(f"/enterprise/v1/{kind}/{ident}", headers=admin)
        assert busy.status_code == 409, busy.text
    await client.delete(f"/enterprise/v1/budgets/{budget['id']}", headers=admin)
    cleared = await client.patch(
        f"/enterprise/v1/members/{user.user_id}",
        json={"department_id": None, "cost_center_id": None},
        headers=admin,
    )
    assert cleared.json()["department"] is None and cleared.json()["cost_center"] is None
    for kind, ident in (("departments", dept), ("cost-centers", cc)):
        assert (
            await client.delete(f"/enterprise/v1/{kind}/{ident}", headers=admin)
        ).status_code == 204
        assert (
            await client.get(f"/enterprise/v1/{kind}/{ident}", headers=admin)
        ).status_code == 404
    actions = await audit_actions(resources, org.id)
    for action in ("department.created", "department.updated", "department.deleted",
                   "cost_center.created", "cost_center.updated", "cost_center.deleted",
                   "budget.created", "budget.deleted"):  # fmt: skip
        assert action in actions, action


async def test_no_cross_org_ids_anywhere(client: httpx.AsyncClient) -> None:
    victim = await make_org(client)
    dept = await make_entity(client, victim, "departments", "Secret")
    cc = await make_entity(client, victim, "cost-centers", "CC-X")
    budget = await _budget(client, victim, scope="department", scope_id=dept, limit_micros=MICROS)
    attacker = await make_org(client)
    h = attacker.h(attacker.owner)
    for method, path in (
        ("GET", f"/enterprise/v1/departments/{dept}"),
        ("PATCH", f"/enterprise/v1/departments/{dept}"),
        ("DELETE", f"/enterprise/v1/departments/{dept}"),
        ("GET", f"/enterprise/v1/cost-centers/{cc}"),
        ("PATCH", f"/enterprise/v1/cost-centers/{cc}"),
        ("DELETE", f"/enterprise/v1/cost-centers/{cc}"),
        ("GET", f"/enterprise/v1/policies/{dept}"),
        ("PATCH", f"/enterprise/v1/policies/{dept}"),
        ("GET", f"/enterprise/v1/budgets/{budget['id']}"),
        ("PATCH", f"/enterprise/v1/budgets/{budget['id']}"),
        ("DELETE", f"/enterprise/v1/budgets/{budget['id']}"),
        ("GET", f"/enterprise/v1/budgets/{budget['id']}/alerts"),
    ):
        body = {"name": "x"} if "departments" in path else {}
        resp = await client.request(
            method, path, json=body if method == "PATCH" else None, headers=h
        )
        assert resp.status_code == 404, (method, path, resp.text)
    # Nor can the attacker point its own members or budgets at the victim's entities.
    for fields in ({"department_id": dept}, {"cost_center_id": cc}):
        resp = await add(
            client, attacker.id, attacker.owner, await signup(client), "member", **fields
        )
        assert resp.status_code == 404, resp.text
    for scope, target in (
        ("department", dept),
        ("cost_center", cc),
        ("member", str(victim.member.user_id)),
    ):
        resp = await client.post(
            "/enterprise/v1/budgets",
            json={"name": "b", "mode": "hard", "scope": scope, "scope_id": target,
                  "limit_micros": MICROS},
            headers=h,
        )  # fmt: skip
        assert resp.status_code == 404, (scope, resp.text)
    # The victim's budget is untouched.
    still = await client.get(
        f"/enterprise/v1/budgets/{budget['id']}", headers=victim.h(victim.owner)
    )
    assert still.status_code == 200 and still.json()["limit_micros"] == MICROS


ROLE_ROUTES = [
    ("GET", "/enterprise/v1/departments", "admin"),
    ("POST", "/enterprise/v1/departments", "admin"),
    ("GET", "/enterprise/v1/cost-centers", "finance"),
    ("POST", "/enterprise/v1/cost-centers", "admin"),
    ("GET", "/enterprise/v1/policies", "admin"),
    ("PATCH", "/enterprise/v1/policies/{dept}", "admin"),
    ("GET", "/enterprise/v1/budgets", "finance"),
    ("POST", "/enterprise/v1/budgets", "admin"),
    ("GET", "/enterprise/v1/budgets/alerts", "finance"),
    ("GET", "/enterprise/v1/budgets/{budget}", "finance"),
    ("PATCH", "/enterprise/v1/budgets/{budget}", "admin"),
    ("GET", "/enterprise/v1/budgets/{budget}/alerts", "finance"),
]
RANK = {"member": 0, "finance": 1, "admin": 2, "owner": 3}


async def test_role_matrix_for_structure_and_budgets(client: httpx.AsyncClient) -> None:
    org = await make_org(client)
    dept = await make_entity(client, org, "departments", "Ops")
    budget = await _budget(client, org, scope="department", scope_id=dept, limit_micros=MICROS)
    users = {"member": org.member, "finance": org.finance, "admin": org.admin, "owner": org.owner}
    for method, path, needed in ROLE_ROUTES:
        url = path.replace("{dept}", dept).replace("{budget}", str(budget["id"]))
        for role, user in users.items():
            tag = secrets.token_hex(3)
            body = {
                "/enterprise/v1/departments": {"name": f"d-{tag}"},
                "/enterprise/v1/cost-centers": {"code": f"c-{tag}"},
                "/enterprise/v1/budgets": {
                    "name": "b",
                    "mode": "soft",
                    "scope": "department",
                    "scope_id": dept,
                    "limit_micros": MICROS,
                },
            }.get(path, {"content_logging": "key"} if "policies" in path else {"name": tag})
            resp = await client.request(
                method, url, json=body if method in ("POST", "PATCH") else None, headers=org.h(user)
            )  # fmt: skip
            if RANK[role] >= RANK[needed]:
                assert resp.status_code in (200, 201), (method, path, role, resp.text)
            else:
                assert resp.status_code == 403, (method, path, role, resp.text)
                assert resp.json()["error"]["code"] == "permission_denied"
    delete = await client.delete(
        f"/enterprise/v1/budgets/{budget['id']}", headers=org.h(org.finance)
    )
    assert delete.status_code == 403


async def test_budget_validation(client: httpx.AsyncClient) -> None:
    org = await make_org(client)
    dept = await make_entity(client, org, "departments", "Ops")
    base = {"name": "b", "mode": "hard", "scope": "department", "scope_id": dept,
            "limit_micros": MICROS}  # fmt: skip
    for bad in (
        {"limit_micros": 0},
        {"limit_micros": -5},
        {"limit_micros": 1.5},
        {"mode": "maybe"},
        {"scope": "team"},
        {"alert_thresholds": [0]},
        {"alert_thresholds": [50, 2000]},
        {"alert_thresholds": list(range(1, 13))},
        {"scope_id": "not-a-uuid"},
    ):
        resp = await client.post(
            "/enterprise/v1/budgets", json={**base, **bad}, headers=org.h(org.admin)
        )
        assert resp.status_code == 400, (bad, resp.text)
        assert resp.json()["error"]["code"] == "invalid_request"
    unknown = await client.post(
        "/enterprise/v1/budgets",
        json={**base, "scope_id": str(uuid.uuid4())},
        headers=org.h(org.admin),
    )
    assert unknown.status_code == 404
    made = await _budget(
        client, org, **{k: v for k, v in base.items() if k not in ("name", "mode")}
    )
    assert made["alert_thresholds"] == [50, 80, 100] and made["remaining_micros"] == MICROS
    moved = await client.patch(
        f"/enterprise/v1/budgets/{made['id']}", json={"scope": "key"}, headers=org.h(org.admin)
    )
    assert moved.status_code == 400
    listed = await client.get("/enterprise/v1/budgets", headers=org.h(org.finance))
    assert [b["id"] for b in listed.json()["data"]] == [made["id"]]


# --- enforcement on the relay ----------------------------------------------------------------


async def test_hard_department_budget_stops_concurrent_spend_at_the_limit(
    client: httpx.AsyncClient, resources: Resources, fake: FakeProvider
) -> None:
    (model,) = await _models(resources, fake, "gpt-bud")
    org = await make_org(client)
    await _fund(resources, org.id)
    dept = await make_entity(client, org, "departments", "Research")
    alice = await _member_in(client, org, department_id=dept)
    bob = await _member_in(client, org, department_id=dept)
    outsider = await _member_in(client, org)  # no department: not limited
    keys = [await _key(client, org, alice), await _key(client, org, bob)]
    # One chat here holds 0.010 credits at most and costs about 0.006; 0.1 credit covers some.
    limit = 100_000
    budget = await _budget(client, org, scope="department", scope_id=dept, limit_micros=limit)
    fake.reset()

    results = await asyncio.gather(*(_chat(client, keys[i % 2], model) for i in range(40)))
    codes = Counter(r.status_code if r.is_success else r.json()["error"]["code"] for r in results)
    assert codes[200] > 0 and codes["api_key_budget_exhausted"] > 0, codes
    assert codes[200] + codes["api_key_budget_exhausted"] == 40, codes
    for r in results:
        if not r.is_success:
            assert r.status_code == 402
    # Refused calls never reached the upstream.
    assert len(fake.calls("/v1/chat")) == codes[200]
    got = (
        await client.get(f"/enterprise/v1/budgets/{budget['id']}", headers=org.h(org.finance))
    ).json()
    spent = await _logged_cost(resources, org.id)
    assert got["spent_micros"] == spent <= limit
    assert got["reserved_micros"] == 0 and got["remaining_micros"] == limit - spent
    assert await pending_holds(resources) == 0
    await ledger_sums_hold(resources, org.id)
    # Someone outside the department is not limited by its budget.
    assert (await _chat(client, await _key(client, org, outsider), model)).status_code == 200
    # Raising the limit lets the department spend again at once.
    raised = await client.patch(
        f"/enterprise/v1/budgets/{budget['id']}",
        json={"limit_micros": 10 * MICROS},
        headers=org.h(org.admin),
    )
    assert raised.status_code == 200
    assert (await _chat(client, keys[0], model)).status_code == 200


async def test_soft_budget_alerts_once_per_threshold(
    client: httpx.AsyncClient, resources: Resources, fake: FakeProvider
) -> None:
    (model,) = await _models(resources, fake, "gpt-soft")
    org = await make_org(client)
    await _fund(resources, org.id)
    cc = await make_entity(client, org, "cost-centers", "CC-9")
    carol = await _member_in(client, org, cost_center_id=cc)
    key = await _key(client, org, carol)
    first = await _chat(client, key, model)
    one_call = await _logged_cost(resources, org.id)
    assert first.status_code == 200 and one_call > 0
    # A limit of four calls, alerts at 50/80/100%: ten calls must cross each exactly once.
    budget = await _budget(
        client, org, scope="cost_center", scope_id=cc, mode="soft", limit_micros=4 * one_call,
        alert_thresholds=[100, 50, 80, 50],
    )  # fmt: skip
    assert budget["alert_thresholds"] == [50, 80, 100]
    results = await asyncio.gather(*(_chat(client, key, model) for _ in range(10)))
    assert all(r.status_code == 200 for r in results)  # soft limits never refuse
    got = (
        await client.get(f"/enterprise/v1/budgets/{budget['id']}", headers=org.h(org.finance))
    ).json()
    assert got["spent_micros"] == 10 * one_call and got["remaining_micros"] == 0
    alerts = await client.get(
        f"/enterprise/v1/budgets/{budget['id']}/alerts", headers=org.h(org.finance)
    )
    assert sorted(a["threshold_pct"] for a in alerts.json()["data"]) == [50, 80, 100]
    for alert in alerts.json()["data"]:
        assert alert["spent_micros"] * 100 >= alert["threshold_pct"] * alert["limit_micros"]
    everything = await client.get("/enterprise/v1/budgets/alerts", headers=org.h(org.admin))
    assert len(everything.json()["data"]) == 3
    # Each alert is also an event in the org's audit log, once.
    audit = await client.get(
        "/enterprise/v1/audit", params={"action": "budget.alert"}, headers=org.h(org.admin)
    )
    events = audit.json()["data"]
    assert sorted(e["after"]["threshold_pct"] for e in events) == [50, 80, 100]
    assert {e["target_id"] for e in events} == {budget["id"]}
    assert all(e["actor_kind"] == "system" for e in events)


async def test_member_and_key_scopes(
    client: httpx.AsyncClient, resources: Resources, fake: FakeProvider
) -> None:
    (model,) = await _models(resources, fake, "gpt-scope")
    org = await make_org(client)
    await _fund(resources, org.id)
    dave = await _member_in(client, org)
    dave_a, dave_b = await _key(client, org, dave), await _key(client, org, dave)
    erin_key, erin_key_id = await _key_id(client, org, org.member)
    other = await _key(client, org, org.member)
    await _budget(client, org, scope="member", scope_id=str(dave.user_id), limit_micros=1)
    await _budget(client, org, scope="key", scope_id=erin_key_id, limit_micros=1)
    for key in (dave_a, dave_b, erin_key):  # every key of the member; only the named key
        resp = await _chat(client, key, model)
        assert resp.status_code == 402, resp.text
        assert resp.json()["error"]["code"] == "api_key_budget_exhausted"
    assert (await _chat(client, other, model)).status_code == 200


async def test_department_model_allowlist_and_content_logging(
    client: httpx.AsyncClient, resources: Resources, fake: FakeProvider
) -> None:
    allowed, blocked = await _models(resources, fake, "gpt-ok", "gpt-no")
    org = await make_org(client)
    await _fund(resources, org.id)
    dept = await make_entity(client, org, "departments", "Legal")
    frank = await _member_in(client, org, department_id=dept)
    logging_key = await _key(client, org, frank, log_content=True)
    quiet_key = await _key(client, org, frank, log_content=False)
    admin = org.h(org.admin)

    bad = await client.patch(
        f"/enterprise/v1/policies/{dept}",
        json={"model_allowlist": ["no-such-model"]},
        headers=admin,
    )
    assert bad.status_code == 400
    set_ = await client.patch(
        f"/enterprise/v1/policies/{dept}",
        json={"model_allowlist": [allowed], "content_logging": "disabled"},
        headers=admin,
    )
    assert set_.status_code == 200, set_.text
    assert set_.json()["model_allowlist"] == [allowed]

    refused = await _chat(client, logging_key, blocked)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "model_not_allowed"
    listed = await client.get("/v1/models", headers={"authorization": f"Bearer {quiet_key}"})
    names = {m["id"] for m in listed.json()["data"]}
    assert allowed in names and blocked not in names
    # A key outside the department is not bound by it.
    free_key = await _key(client, org, org.member)
    assert (await _chat(client, free_key, blocked)).status_code == 200

    async def details(key: str) -> int:
        resp = await _chat(client, key, allowed)
        assert resp.status_code == 200, resp.text
        async with resources.sessions() as s:
            return int(
                (
                    await s.execute(
                        text("SELECT count(*) FROM request_details WHERE request_id = :r"),
                        {"r": resp.headers["x-request-id"]},
                    )
                ).scalar_one()
            )

    assert await details(logging_key) == 0  # disabled beats the key's own flag
    await client.patch(
        f"/enterprise/v1/policies/{dept}", json={"content_logging": "enabled"}, headers=admin
    )
    assert await details(quiet_key) == 1  # enabled beats it the other way
    await client.patch(
        f"/enterprise/v1/policies/{dept}",
        json={"content_logging": "key", "model_allowlist": None},
        headers=admin,
    )
    assert await details(logging_key) == 1 and await details(quiet_key) == 0
    assert (await _chat(client, quiet_key, blocked)).status_code == 200
    assert "policy.updated" in await audit_actions(resources, org.id)
