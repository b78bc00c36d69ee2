"""Org changes take their locks in one order, so concurrent ones queue and never deadlock.

Before, a member edit locked the org row and then (through the membership's foreign key)
the cost center it named, while a cost-center edit locked the cost center and then
(through its audit event's foreign key) the org: a schemathesis run that hit both at once
got "deadlock detected" from `PATCH /enterprise/v1/members/{id}`. Now every such change
takes the org row first.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from config.runtime import Resources
from domain.budgets import service as budgets
from domain.enterprise import service as enterprise
from domain.enterprise import structure
from domain.identity import repository as identity_repo
from domain.identity import service as identity
from domain.identity.service import OrgContext
from tests.enterprise.helpers import Org, make_entity, make_org
from tests.fixtures.conditions import backend_pid, until_waiting_on_a_lock


async def _ctx(s: AsyncSession, org: Org) -> OrgContext:
    user = await identity_repo.user_by_id(s, org.owner.user_id)
    assert user is not None
    return await identity.org_context(s, user, org.id, None)


async def _interleave(
    resources: Resources,
    org: Org,
    first_a: Callable[[AsyncSession, OrgContext], Awaitable[Any]],
    second: Callable[[AsyncSession, OrgContext], Awaitable[Any]],
    first_b: Callable[[AsyncSession, OrgContext], Awaitable[Any]],
) -> None:
    """Transaction 1 runs `first_a`, transaction 2 starts `second` and is left blocked (or
    done), then transaction 1 runs `first_b` and commits. In the old lock order the second
    transaction held a lock that `first_b` needed while waiting for one `first_a` held."""
    async with resources.sessions() as one, resources.sessions() as two:
        ctx_one, ctx_two = await _ctx(one, org), await _ctx(two, org)
        await first_a(one, ctx_one)
        pid = await backend_pid(two)
        racing = asyncio.create_task(second(two, ctx_two))
        await until_waiting_on_a_lock(resources.sessions, pid, racing)
        await first_b(one, ctx_one)
        await one.commit()
        await racing
        await two.commit()


async def test_member_edits_and_cost_center_edits_queue_instead_of_deadlocking(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    org = await make_org(client)
    cc = uuid.UUID(await make_entity(client, org, "cost-centers", "CC-1"))

    async def demote(s: AsyncSession, ctx: OrgContext) -> None:
        await enterprise.update_member(s, ctx, org.admin.user_id, {"role": "finance"})

    async def rename(s: AsyncSession, ctx: OrgContext) -> None:
        await structure.update_entity(s, "cost_center", ctx, cc, {"name": "renamed"})

    async def assign(s: AsyncSession, ctx: OrgContext) -> None:
        await enterprise.update_member(s, ctx, org.member.user_id, {"cost_center_id": cc})

    await _interleave(resources, org, demote, rename, assign)
    members = {m.user_id: m for m in (await _members(client, org))}
    assert members[org.admin.user_id]["role"] == "finance"
    assert members[org.member.user_id]["cost_center_id"] == str(cc)
    found = await client.get(f"/enterprise/v1/cost-centers/{cc}", headers=org.h(org.owner))
    assert found.json()["name"] == "renamed"


async def test_member_edits_and_policy_edits_queue_instead_of_deadlocking(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    org = await make_org(client)
    dept = uuid.UUID(await make_entity(client, org, "departments", "Research"))

    async def demote(s: AsyncSession, ctx: OrgContext) -> None:
        await enterprise.update_member(s, ctx, org.admin.user_id, {"role": "finance"})

    async def restrict(s: AsyncSession, ctx: OrgContext) -> None:
        await structure.set_policy(s, ctx, dept, {"content_logging": "disabled"})

    async def assign(s: AsyncSession, ctx: OrgContext) -> None:
        await enterprise.update_member(s, ctx, org.member.user_id, {"department_id": dept})

    await _interleave(resources, org, demote, restrict, assign)
    members = {m.user_id: m for m in (await _members(client, org))}
    assert members[org.member.user_id]["department_id"] == str(dept)


async def test_two_transactions_patching_two_members_in_opposite_orders(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    """Each transaction edits both members, in opposite orders, and a budget scoped to the
    department both are moved into: all of it queues behind the org row."""
    org = await make_org(client)
    dept = uuid.UUID(await make_entity(client, org, "departments", "Research"))
    policy = None

    async def budget(s: AsyncSession, ctx: OrgContext) -> None:
        nonlocal policy
        view = await budgets.create_policy(
            s, ctx, {"name": "b", "scope": "department", "scope_id": dept,
                     "limit_micros": 10**9, "mode": "soft"},
        )  # fmt: skip
        policy = view.policy["id"]

    async def admin_then_member(s: AsyncSession, ctx: OrgContext) -> None:
        await enterprise.update_member(s, ctx, org.admin.user_id, {"department_id": dept})
        await enterprise.update_member(s, ctx, org.member.user_id, {"department_id": dept})

    async def member_then_admin(s: AsyncSession, ctx: OrgContext) -> None:
        await enterprise.update_member(s, ctx, org.member.user_id, {"role": "finance"})
        await enterprise.update_member(s, ctx, org.admin.user_id, {"role": "finance"})

    await _interleave(resources, org, admin_then_member, member_then_admin, budget)
    assert policy is not None
    members = {m.user_id: m for m in (await _members(client, org))}
    assert members[org.member.user_id]["role"] == "finance"
    assert members[org.admin.user_id]["department_id"] == str(dept)


async def test_concurrent_member_and_structure_patches_over_http_all_succeed(
    client: httpx.AsyncClient,
) -> None:
    """The same mix as a burst of real requests: every one answers 200."""
    org = await make_org(client)
    cc = await make_entity(client, org, "cost-centers", "CC-1")
    dept = await make_entity(client, org, "departments", "Research")
    h = org.h(org.owner)
    calls = []
    for i in range(15):
        calls += [
            client.patch(f"/enterprise/v1/members/{org.member.user_id}",
                         json={"cost_center_id": cc if i % 2 else None,
                               "department_id": dept if i % 2 else None}, headers=h),
            client.patch(f"/enterprise/v1/cost-centers/{cc}", json={"name": f"n{i}"}, headers=h),
            client.patch(f"/enterprise/v1/policies/{dept}",
                         json={"content_logging": ("key", "disabled")[i % 2]}, headers=h),
            client.patch(f"/enterprise/v1/members/{org.admin.user_id}",
                         json={"role": ("admin", "finance")[i % 2]}, headers=h),
        ]  # fmt: skip
    answers = await asyncio.gather(*calls)
    assert [r.status_code for r in answers] == [200] * len(calls), [
        r.text for r in answers if r.status_code != 200
    ]


async def _members(client: httpx.AsyncClient, org: Org) -> list[Any]:
    resp = await client.get("/enterprise/v1/members", headers=org.h(org.owner))
    assert resp.status_code == 200, resp.text
    return [_Member(m) for m in resp.json()["data"]]


class _Member(dict[str, Any]):
    @property
    def user_id(self) -> uuid.UUID:
        return uuid.UUID(self["user_id"])
