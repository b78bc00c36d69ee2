"""The bench's tenant, created through the same domain services the product uses.

Seeding through the services (not raw INSERTs) means the relay under load reads rows shaped
exactly as production writes them: an encrypted channel secret, a peppered key hash, a real
credit account with a purchase entry. Only the tier is left at its default; the bench is
about the relay's cost, not pricing rules.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, replace

from config.runtime import identity_config
from config.settings import Settings
from domain.audit.service import SYSTEM
from domain.crypto import SecretBox
from domain.identity import repository as identity_repo
from domain.identity.service import OrgContext, create_user
from domain.keys.service import create_key
from domain.ledger import service as ledger
from domain.pricing import service as catalog
from domain.pricing.cost import chat_cost_micros
from domain.pricing.models import NewModel, NewPrice
from domain.routing import channels as channel_service
from schema.db import create_engine, session_factory
from schema.migrate import upgrade
from schema.unit_of_work import unit_of_work

MODEL = "bench-chat"
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
class Seeded:
    org_id: uuid.UUID
    key_id: uuid.UUID
    key: str
    seeded_micros: int
    expected_cost_micros: int  # what one call at the upstream's fixed usage must cost


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
    settings: Settings, upstream_base_url: str, prompt_tokens: int, completion_tokens: int
) -> Seeded:
    assert settings.database_url is not None
    engine = create_engine(settings.database_url, pool_size=2)
    try:
        await upgrade(engine)
        sessions = session_factory(engine)
        identity = replace(identity_config(settings), bcrypt_rounds=SEED_BCRYPT_ROUNDS)
        box = SecretBox(settings.encryption_key_list)
        async with unit_of_work(sessions) as s:
            user = await create_user(
                s,
                identity,
                f"bench-{secrets.token_hex(4)}@example.com",
                "bench-" + secrets.token_urlsafe(24),
            )
            org = (await identity_repo.memberships_of(s, user.id))[0].org
            await ledger.credit(
                s, org.id, SEED_MICROS, kind="purchase", key=f"bench:seed:{org.id}", actor="bench"
            )
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
            ctx = OrgContext(user, org, "owner", SYSTEM)
            row, full_key = await create_key(
                s, ctx, identity.pepper, name="bench", rpm_limit=RPM_LIMIT, expires_in="never"
            )
        expected = chat_cost_micros(
            snapshot,
            input_tokens=prompt_tokens,
            output_tokens=completion_tokens,
            tier=org.tier,
            power=org.power_level,
        )
        return Seeded(org.id, row.id, full_key, SEED_MICROS, expected)
    finally:
        await engine.dispose()
