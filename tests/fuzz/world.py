"""The world the fuzz run acts in: an operator, a customer org with real entities, a key.

Generated path parameters are swapped for ids that exist, so a fuzzed body reaches the code
behind the lookup (a random id would stop at 404 and test nothing); requests that would
leave this machine are pointed at a closed loopback port.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from config.runtime import Resources
from domain.demo import seed_demo
from domain.ledger import service as ledger
from tests.fixtures.portal import PASSWORD, PortalUser, signup

OPERATOR_EMAIL = "fuzz-operator@example.com"
# Nothing listens on the discard port: a send there fails at once and never leaves the host.
NOWHERE = "http://127.0.0.1:9/v1"
MICROS = 1_000_000


@dataclass
class FuzzWorld:
    api_key: str
    customer: PortalUser
    operator_token: str
    ids: dict[str, str]
    stats: dict[str, Any] = field(default_factory=dict)

    def headers_for(self, path: str) -> dict[str, str]:
        if path.startswith(("/admin/v1", "/ops/v1")):
            return {"authorization": f"Bearer {self.operator_token}"}
        if path.startswith(("/portal/v1", "/enterprise/v1")):
            return {
                "authorization": f"Bearer {self.customer.token}",
                "x-org-id": str(self.customer.org_id),
            }
        return {"authorization": f"Bearer {self.api_key}"}


async def _ok(resp: httpx.Response, status: int = 201) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    return dict(resp.json())


async def build_world(resources: Resources, client: httpx.AsyncClient) -> FuzzWorld:
    async with resources.sessions.begin() as s:
        await seed_demo(
            s, resources.identity, resources.secret_box,
            admin_email=OPERATOR_EMAIL, admin_password=PASSWORD, issue_key=False,
        )  # fmt: skip
    login = await client.post(
        "/portal/v1/auth/login", json={"email": OPERATOR_EMAIL, "password": PASSWORD}
    )
    operator_token = (await _ok(login, 200))["token"]

    customer = await signup(client)
    member = await signup(client)
    h = customer.headers(customer.org_id)
    await _ok(
        await client.post(
            "/enterprise/v1/members", json={"email": member.email, "role": "member"}, headers=h
        )
    )
    dept = await _ok(
        await client.post("/enterprise/v1/departments", json={"name": "Research"}, headers=h)
    )
    cc = await _ok(
        await client.post("/enterprise/v1/cost-centers", json={"code": "CC-1"}, headers=h)
    )
    budget = await _ok(
        await client.post(
            "/enterprise/v1/budgets",
            json={"name": "team", "scope": "department", "scope_id": dept["id"],
                  "limit_micros": 1_000 * MICROS, "mode": "soft"},
            headers=h,
        )
    )  # fmt: skip
    relay_key = await _ok(
        await client.post("/portal/v1/api-keys", json={"name": "relay", "expires_in": "never"},
                          headers=h)
    )  # fmt: skip
    target_key = await _ok(
        await client.post("/portal/v1/api-keys", json={"name": "target"}, headers=h)
    )
    async with resources.sessions.begin() as s:
        await ledger.credit(
            s, customer.org_id, 100_000 * MICROS, kind="purchase",
            key=f"fuzz:{customer.org_id}", actor="test",
        )  # fmt: skip
    ids = {
        "key_id": str(target_key["id"]),
        "user_id": str(member.user_id),
        "department_id": str(dept["id"]),
        "cost_center_id": str(cc["id"]),
        "policy_id": str(budget["id"]),
        "org_id": str(customer.org_id),
        "name": "demo-chat",
    }
    return FuzzWorld(str(relay_key["key"]), customer, operator_token, ids)


def new_id() -> str:
    return str(uuid.uuid4())
