"""Shared by the portal and ops tests: sessions for seeded tenants, operators, leak checks."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import text

from config.runtime import Resources
from domain.identity.bootstrap import bootstrap_admin
from tests.fixtures.portal import PASSWORD
from tests.fixtures.relay import Tenant

HELLO = {"role": "user", "content": "hello there friend"}
FORBIDDEN_KEY_PARTS = ("channel", "attempt", "diagnostic", "raw", "secret", "payload", "snapshot")


async def session_headers(
    client: httpx.AsyncClient, resources: Resources, tenant: Tenant
) -> dict[str, str]:
    async with resources.sessions() as s:
        email = (
            await s.execute(text("SELECT email FROM users WHERE id = :u"), {"u": tenant.user_id})
        ).scalar_one()
    login = await client.post("/portal/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    return {"authorization": f"Bearer {login.json()['token']}"}


async def operator_headers(client: httpx.AsyncClient, resources: Resources) -> dict[str, str]:
    await bootstrap_admin(
        resources.sessions, resources.identity, "ops@example.com", "ops-password-42"
    )
    login = await client.post(
        "/portal/v1/auth/login", json={"email": "ops@example.com", "password": "ops-password-42"}
    )
    assert login.status_code == 200, login.text
    return {"authorization": f"Bearer {login.json()['token']}"}


def leaks(value: Any, secrets: set[str], path: str = "$") -> list[str]:
    """Every key that names an internal, and every string that contains a secret value."""
    found: list[str] = []
    if isinstance(value, dict):
        for k, v in value.items():
            if any(part in str(k).lower() for part in FORBIDDEN_KEY_PARTS):
                found.append(f"{path}.{k}")
            found += leaks(v, secrets, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += leaks(v, secrets, f"{path}[{i}]")
    elif isinstance(value, str):
        found += [f"{path}={value!r}" for s in secrets if s in value]
    return found


def channel_ids(*ids: uuid.UUID) -> set[str]:
    return {str(i) for i in ids} | {i.hex for i in ids}
