"""An org with one person per role for the console's org administration tests, each with
their own signed-in HTTP client acting in that org."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
from fastapi import FastAPI
from sqlalchemy import text

from config.runtime import Resources
from domain.enterprise import service as enterprise
from domain.identity import service as identity
from domain.identity.service import OrgContext
from tests.fixtures.console import sign_in
from tests.fixtures.portal import PASSWORD

ROLES = ("owner", "admin", "finance", "member")


@dataclass
class Company:
    org_id: uuid.UUID
    emails: dict[str, str]  # role -> email
    owner_ctx: OrgContext


def new_email(tag: str) -> str:
    return f"{tag}-{secrets.token_hex(3)}@example.com"


async def make_company(resources: Resources, name: str = "Acme Corp") -> Company:
    emails = {role: new_email(role) for role in ROLES}
    async with resources.sessions.begin() as s:
        owner = await identity.create_user(s, resources.identity, emails["owner"], PASSWORD)
        org_id = await identity.create_org(s, name, owner.id, tier="professional")
        owner_ctx = await identity.org_context(s, owner, org_id, None)  # acts as the owner
        for role in ROLES[1:]:
            await identity.create_user(s, resources.identity, emails[role], PASSWORD)
            await enterprise.add_member(s, owner_ctx, email=emails[role], role=role)
    return Company(org_id, emails, owner_ctx)


@asynccontextmanager
async def person(app: FastAPI, email: str, org_id: uuid.UUID) -> AsyncIterator[httpx.AsyncClient]:
    """A signed-in console client acting in `org_id`."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        signed = await sign_in(c, email)
        assert signed.status_code == 303, signed.text
        c.cookies.set("oxinf_org", str(org_id))
        yield c


async def audit_actions(resources: Resources, org_id: uuid.UUID) -> list[str]:
    async with resources.sessions() as s:
        rows = await s.execute(
            text("SELECT action FROM audit_events WHERE org_id = :o ORDER BY id"), {"o": org_id}
        )
        return [r[0] for r in rows]
