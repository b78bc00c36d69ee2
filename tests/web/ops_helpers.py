"""People for the ops console tests: an operator and a non-operator, signed in over HTTP."""

from __future__ import annotations

import httpx

from config.runtime import Resources
from domain.identity.bootstrap import bootstrap_admin
from tests.fixtures.console import sign_in, sign_up

OPERATOR_EMAIL = "ops@example.com"
OPERATOR_PASSWORD = "ops-password-42"


async def make_operator(resources: Resources) -> None:
    await bootstrap_admin(resources.sessions, resources.identity, OPERATOR_EMAIL, OPERATOR_PASSWORD)


async def operator_client(client: httpx.AsyncClient, resources: Resources) -> None:
    """Sign `client` in as a platform operator."""
    await make_operator(resources)
    resp = await sign_in(client, OPERATOR_EMAIL, OPERATOR_PASSWORD)
    assert resp.status_code == 303, resp.text


async def developer_client(client: httpx.AsyncClient) -> str:
    """Sign `client` up as an ordinary developer (owner of a personal org)."""
    return await sign_up(client)
