"""The bench's tenants, created through the same domain services the product uses.

Seeding through the services (not raw INSERTs) means the relay under load reads rows shaped
exactly as production writes them: an encrypted channel secret, a peppered key hash, a real
credit account with a purchase entry. Only the tier is left at its default; the bench is
about the relay's cost, not pricing rules.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from config.runtime import identity_config
from config.settings import Settings
from domain.audit.service import SYSTEM
from domain.crypto import SecretBox
from domain.identity import repository as identity_repo
from domain.identity.service import IdentityConfig, OrgContext, create_user
from domain.keys.service import create_key
from domain.ledger import service as ledger
from domain.pricing import service as catalog
from domain.pricing.cost import chat_cost_micros, media_cost_micros
from domain.pricing.models import NewModel, NewPrice
from domain.routing import channels as channel_service
from schema.db import create_engine, session_factory
from schema.migrate import upgrade
from schema.unit_of_work import unit_of_work

MODEL = "bench-chat"
TASK_MODEL = "bench-image"  # on the built-in demo media provider: no network
TASK_UNIT_PRICE_MICROS = 1_000_000  # one credit an image
INPUT_PER_MTOK = 150
OUTPUT_PER_MTOK = 600
SEED_CREDITS = 10**9
SEED_MICROS = SEED_CREDITS * 1_000_000
# The key's own validation caps rpm_limit at 1,000,000: far above what one machine serves
# in a minute, so the limiter runs on every call without ever refusing one.
RPM_LIMIT = 1_000_000
# Seeding hashes one password; production rounds would only slow the bench's start.
SEED_BCRYPT_ROUNDS = 4


@dataclass(frozen=True)
class Tenant:
    """An org of its own, so each phase's books are reconciled apart from the others."""

    org_id: uuid.UUID
    key: str
    seeded_micros: int


@dataclass(frozen=True)
class Seeded:
    org_id: uuid.UUID
    key_id: uuid.UUID
    key: str
    seeded_micros: int
    expected_cost_micros: int  # what one call at the upstream's fixed usage must cost
    hot: Tenant  # funded for only part of the hot-account burst
    tasks: Tenant  # submits media tasks
    task_cost_micros: int  # the hold one one-image task reserves


async def _tenant(
    s: AsyncSession, identity: IdentityConfig, name: str, micros: int
) -> tuple[Tenant, uuid.UUID, Any]:
    user = await create_user(
        s,
        identity,
        f"{name}-{secrets.token_hex(4)}@example.com",
        "bench-" + secrets.token_urlsafe(24),
    )
    org = (await identity_repo.memberships_of(s, user.id))[0].org
    await ledger.credit(
        s, org.id, micros, kind="purchase", key=f"bench:seed:{org.id}", actor="bench"
    )
    ctx = OrgContext(user, org, "owner", SYSTEM)
    row, full_key = await create_key(
        s, ctx, identity.pepper, name=name, rpm_limit=RPM_LIMIT, expires_in="never"
    )
    return Tenant(org.id, full_key, micros), row.id, org


def bench_settings(database_url: str) -> Settings:
    """Fresh secrets per run, shared by the seeding and the API process through its env."""
    from cryptography.fernet import Fernet

    return Settings(
        _env_file=None,
        env="test",
        database_url=database_url,
        hmac_pepper=secrets.token_hex(32),
        encryption_keys=Fernet.generate_key().decode(),
        temporal_address="127.0.0.1:1",
    )


async def migrate_and_seed(
    settings: Settings,
    upstream_base_url: str,
    prompt_tokens: int,
    completion_tokens: int,
    *,
    hot_affordable_calls: int,
) -> Seeded:
    """`hot_affordable_calls`: how many chat calls the hot org's credit pays for exactly."""
    assert settings.database_url is not None
    engine = create_engine(settings.database_url, pool_size=2)
    try:
        await upgrade(engine)
        sessions = session_factory(engine)
        identity = replace(identity_config(settings), bcrypt_rounds=SEED_BCRYPT_ROUNDS)
        box = SecretBox(settings.encryption_key_list)
        async with unit_of_work(sessions) as s:
            main, key_id, org = await _tenant(s, identity, "bench", SEED_MICROS)
            await catalog.create_model(
                s,
                NewModel(name=MODEL, type="chat", provider="openai", max_output_tokens=1000),
            )
            snapshot = await catalog.set_price(
                s, MODEL, NewPrice(input_per_mtok=INPUT_PER_MTOK, output_per_mtok=OUTPUT_PER_MTOK)
            )
            await channel_service.create_channel(
                s,
                SYSTEM,
                box,
                {
                    "name": "bench-upstream",
                    "provider": "openai",
                    "base_url": upstream_base_url,
                    "models": [MODEL],
                    "model_mapping": {},
                    "priority": 0,
                    "weight": 1,
                    "types": ["chat"],
                },
                "sk-bench-" + secrets.token_hex(16),
            )
            await catalog.create_model(s, NewModel(name=TASK_MODEL, type="image", provider="demo"))
            task_price = await catalog.set_price(
                s, TASK_MODEL, NewPrice(unit="image", unit_price_micros=TASK_UNIT_PRICE_MICROS)
            )
            await channel_service.create_channel(
                s, SYSTEM, box,
                {"name": "bench-media", "provider": "demo", "models": [TASK_MODEL],
                 "types": ["image"]},
                None,
            )  # fmt: skip
        expected = chat_cost_micros(
            snapshot,
            input_tokens=prompt_tokens,
            output_tokens=completion_tokens,
            tier=org.tier,
            power=org.power_level,
        )
        async with unit_of_work(sessions) as s:
            hot, _, _ = await _tenant(s, identity, "bench-hot", hot_affordable_calls * expected)
            tasks, _, task_org = await _tenant(s, identity, "bench-tasks", SEED_MICROS)
        task_cost = media_cost_micros(
            task_price, units=1, tier=task_org.tier, power=task_org.power_level
        )
        return Seeded(main.org_id, key_id, main.key, SEED_MICROS, expected, hot, tasks, task_cost)
    finally:
        await engine.dispose()
