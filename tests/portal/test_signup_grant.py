"""A first call without Stripe: the sign-up grant, and the org a session acts in by default."""

from __future__ import annotations

import dataclasses
import uuid

import httpx
import pytest

from config.runtime import Resources
from config.settings import Settings
from domain.identity import repository as identity_repo
from domain.identity.service import create_org, grant_signup_credits
from domain.ledger import service as ledger
from tests.fixtures.portal import signup
from tests.test_settings_and_migrations import GOOD

MICROS = 1_000_000


@pytest.fixture
def granting(resources: Resources, monkeypatch: pytest.MonkeyPatch) -> Resources:
    monkeypatch.setattr(
        resources,
        "identity",
        dataclasses.replace(resources.identity, signup_grant_micros=1_000 * MICROS),
    )
    return resources


def test_grant_defaults_to_1000_credits_in_dev_and_nothing_in_production() -> None:
    assert Settings(env="dev").signup_grant_micros == 1_000 * MICROS
    assert Settings(env="test").signup_grant_micros == 0
    assert Settings(**GOOD).signup_grant_micros == 0  # type: ignore[arg-type]
    assert Settings(**{**GOOD, "signup_grant_credits": 25}).signup_grant_micros == 25 * MICROS  # type: ignore[arg-type]


async def test_signup_grants_a_bonus_once_with_a_reason(
    client: httpx.AsyncClient, granting: Resources
) -> None:
    user = await signup(client)
    balance = (await client.get("/portal/v1/credits/balance", headers=user.headers())).json()
    assert balance["balance"] == "1000"
    entries = (await client.get("/portal/v1/credits/transactions", headers=user.headers())).json()
    (entry,) = entries["data"]
    assert (entry["kind"], entry["amount"]) == ("bonus", "1000")
    assert entry["reason"] == "sign-up grant: 1000 credits for a first call"

    # Granting again for the same org (a retried sign-up step) moves nothing.
    async with granting.sessions.begin() as s:
        await grant_signup_credits(s, user.org_id, 1_000 * MICROS)
        assert (await ledger.balance(s, user.org_id)).balance_micros == 1_000 * MICROS


async def test_no_grant_when_unset(client: httpx.AsyncClient) -> None:
    user = await signup(client)
    balance = (await client.get("/portal/v1/credits/balance", headers=user.headers())).json()
    assert balance["balance"] == "0"


async def test_default_org_is_listed_first_and_used_when_none_is_named(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    user = await signup(client)
    async with resources.sessions.begin() as s:
        team: uuid.UUID = await create_org(s, "Demo", user.user_id, tier="professional")
        await identity_repo.set_default_org_if_unset(s, user.user_id, team)
        # Once chosen, a later default does not replace it.
        await identity_repo.set_default_org_if_unset(s, user.user_id, user.org_id)
    me = (await client.get("/portal/v1/me", headers=user.headers())).json()
    assert [o["name"] for o in me["orgs"]] == ["Demo", "Personal"]
    balance = await client.get("/portal/v1/credits/balance", headers=user.headers())
    assert balance.json()["tier"] == "professional"  # acting in the demo org
