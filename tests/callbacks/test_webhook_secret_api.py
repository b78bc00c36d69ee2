"""`/portal/v1/webhook-secret`: admins read and rotate their org's secret, nobody else's."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import text

from config.runtime import Resources
from domain.callbacks import secrets
from domain.callbacks.signing import secret_bytes
from domain.identity import repository as identity_repo
from tests.fixtures.portal import PortalUser, signup

URL = "/portal/v1/webhook-secret"


async def _audit(resources: Resources, user: PortalUser) -> list[tuple[str, str | None]]:
    async with resources.sessions() as s:
        rows = await s.execute(
            text(
                "SELECT action, after::text FROM audit_events "
                "WHERE target_type = 'webhook_secret' AND org_id = :org ORDER BY id"
            ),
            {"org": user.org_id},
        )
        return [(r[0], r[1]) for r in rows]


async def test_get_creates_once_and_post_rotates(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    owner = await signup(client)
    first = await client.get(URL, headers=owner.headers())
    assert first.status_code == 200, first.text
    assert first.headers["cache-control"] == "no-store"
    body = first.json()
    assert body["secret"].startswith("whsec_") and len(secret_bytes(body["secret"])) == 32
    assert body["created_at"] and body["rotated_at"] is None

    again = await client.get(URL, headers=owner.headers())
    assert again.json() == body

    rotated = await client.post(URL, headers=owner.headers())
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()
    assert new["secret"] != body["secret"] and new["secret"].startswith("whsec_")
    assert new["created_at"] == body["created_at"] and new["rotated_at"] is not None
    assert (await client.get(URL, headers=owner.headers())).json() == new

    # what deliveries sign with is what the portal shows
    async with resources.sessions() as s:
        assert await secrets.get_or_create(s, owner.org_id, resources.secret_box) == new["secret"]
        stored = (
            await s.execute(
                text("SELECT secret_ciphertext FROM webhook_secrets WHERE org_id = :o"),
                {"o": owner.org_id},
            )
        ).scalar_one()
    assert new["secret"] not in stored and new["secret"][6:] not in stored  # encrypted at rest

    events = await _audit(resources, owner)
    assert [a for a, _ in events] == ["webhook_secret.created", "webhook_secret.rotated"]
    dump = str(events)
    assert body["secret"][6:] not in dump and new["secret"][6:] not in dump


async def test_rotating_before_any_read_creates_one(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    owner = await signup(client)
    rotated = await client.post(URL, headers=owner.headers())
    assert rotated.status_code == 200 and rotated.json()["secret"].startswith("whsec_")
    assert (await client.get(URL, headers=owner.headers())).json() == rotated.json()
    assert [a for a, _ in await _audit(resources, owner)] == ["webhook_secret.rotated"]


async def test_members_are_refused_and_admins_allowed(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    owner = await signup(client)
    member = await signup(client)
    admin = await signup(client)
    async with resources.sessions.begin() as s:
        await identity_repo.insert_membership(s, member.user_id, owner.org_id, "member")
        await identity_repo.insert_membership(s, admin.user_id, owner.org_id, "admin")
    for method in ("GET", "POST"):
        resp = await client.request(method, URL, headers=member.headers(owner.org_id))
        assert resp.status_code == 403, (method, resp.text)
        assert resp.json()["error"]["code"] == "permission_denied"
        assert "whsec_" not in resp.text
    by_admin = await client.get(URL, headers=admin.headers(owner.org_id))
    by_owner = await client.get(URL, headers=owner.headers())
    assert by_admin.status_code == 200 and by_admin.json() == by_owner.json()


async def test_another_org_cannot_read_or_rotate_it(client: httpx.AsyncClient) -> None:
    victim = await signup(client)
    attacker = await signup(client)
    original = (await client.get(URL, headers=victim.headers())).json()
    for method in ("GET", "POST"):
        resp = await client.request(method, URL, headers=attacker.headers(victim.org_id))
        assert resp.status_code == 404, (method, resp.text)
        assert "whsec_" not in resp.text
    own = (await client.get(URL, headers=attacker.headers())).json()
    assert own["secret"] != original["secret"]
    assert (await client.get(URL, headers=victim.headers())).json() == original


async def test_requires_a_session(client: httpx.AsyncClient) -> None:
    assert (await client.get(URL)).status_code == 401
    assert (await client.post(URL)).status_code == 401


async def test_concurrent_first_reads_agree_on_one_secret(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    owner = await signup(client)

    async def first_read() -> str:
        async with resources.sessions.begin() as s:
            return await secrets.get_or_create(s, owner.org_id, resources.secret_box)

    seen = await asyncio.gather(*(first_read() for _ in range(8)))
    assert len(set(seen)) == 1
    assert [a for a, _ in await _audit(resources, owner)] == ["webhook_secret.created"]


async def test_rotation_audit_before_is_the_secret_as_it_was(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    owner = await signup(client)
    assert (await client.get(URL, headers=owner.headers())).status_code == 200
    assert (await client.post(URL, headers=owner.headers())).status_code == 200
    async with resources.sessions() as s:
        before = (
            await s.execute(
                text(
                    "SELECT before FROM audit_events "
                    "WHERE action = 'webhook_secret.rotated' AND org_id = :org"
                ),
                {"org": owner.org_id},
            )
        ).scalar_one()
    assert before["created_at"] and before["rotated_at"] is None  # never rotated until now
