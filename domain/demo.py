"""What `make dev` seeds so a fresh checkout answers a chat call with no network at all.

A `demo-chat` model priced like a small model, a `demo-embedding` model, `demo-image`,
`demo-video` and `demo-speech` media models, channels on the built-in `demo` provider
serving them all, a
"Demo" org owned by the bootstrap operator holding credits, and one API key for it. Every
step is idempotent, so each `make dev` run converges on the same state.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from domain.audit.service import SYSTEM, Actor
from domain.crypto import SecretBox
from domain.identity import repository as identity_repo
from domain.identity.service import IdentityConfig, OrgContext, create_org, ensure_operator
from domain.keys import service as keys
from domain.ledger import service as ledger
from domain.pricing import repository as pricing_repo
from domain.pricing import service as catalog
from domain.pricing.models import NewModel, NewPrice
from domain.routing import channels as channel_service
from domain.routing import repository as channels_repo

DEMO_ORG = "Demo"
DEMO_CREDITS_MICROS = 100_000 * 1_000_000
DEMO_MODELS = {"demo-chat": ("chat", 150, 600), "demo-embedding": ("embedding", 20, 0)}
# Embeddings get a channel of their own, so a dev database seeded before they existed
# converges too (the chat channel is never rewritten).
EMBEDDING_CHANNEL = "demo-embedding"
# Media: (type, unit, micro-credits per unit): 20 credits an image, 50 a video second,
# 15 per 1,000 characters of speech.
DEMO_MEDIA = {
    "demo-image": ("image", "image", 20_000_000),
    "demo-video": ("video", "second", 50_000_000),
    "demo-speech": ("audio", "1k_chars", 15_000_000),
}


@dataclass(frozen=True)
class DemoSeed:
    org_id: str
    admin_email: str
    api_key: str | None  # only when a new key was issued on this run


async def seed_demo(
    session: AsyncSession,
    cfg: IdentityConfig,
    box: SecretBox,
    *,
    admin_email: str,
    admin_password: str,
    issue_key: bool,
) -> DemoSeed:
    admin, _ = await ensure_operator(session, cfg, admin_email, admin_password)
    orgs = [
        m for m in await identity_repo.memberships_of(session, admin.id) if m.org.name == DEMO_ORG
    ]
    if orgs:
        org = orgs[0].org
    else:
        org_id = await create_org(session, DEMO_ORG, admin.id, tier="professional")
        found = await identity_repo.org_by_id(session, org_id)
        assert found is not None
        org = found
    # The admin's portal session acts in the demo org unless they chose another.
    await identity_repo.set_default_org_if_unset(session, admin.id, org.id)
    await ledger.credit(
        session, org.id, DEMO_CREDITS_MICROS, kind="bonus", key=f"demo:{org.id}:credits",
        actor="system:demo", reason="demo credits for make dev",
    )  # fmt: skip
    for name, (kind, input_price, output_price) in DEMO_MODELS.items():
        if await pricing_repo.get_model(session, name) is None:
            await catalog.create_model(
                session,
                NewModel(name=name, type=kind, provider="demo",
                         max_output_tokens=1024 if kind == "chat" else None,
                         description="built-in demo model: deterministic, no network"),
            )  # fmt: skip
            await catalog.set_price(
                session, name, NewPrice(input_per_mtok=input_price, output_per_mtok=output_price)
            )
    for name, (kind, unit, unit_price) in DEMO_MEDIA.items():
        if await pricing_repo.get_model(session, name) is None:
            await catalog.create_model(
                session,
                NewModel(name=name, type=kind, provider="demo",
                         description="built-in demo media model: no network"),
            )  # fmt: skip
            await catalog.set_price(
                session, name, NewPrice(unit=unit, unit_price_micros=unit_price)
            )
    if await channels_repo.get_by_name(session, "demo") is None:
        await channel_service.create_channel(
            session, SYSTEM, box,
            {"name": "demo", "provider": "demo", "models": ["demo-chat", *DEMO_MEDIA],
             "types": ["chat", "image", "video", "audio"]},
            None,
        )  # fmt: skip
    if await channels_repo.get_by_name(session, EMBEDDING_CHANNEL) is None:
        await channel_service.create_channel(
            session, SYSTEM, box,
            {"name": EMBEDDING_CHANNEL, "provider": "demo", "models": ["demo-embedding"],
             "types": ["embedding"]},
            None,
        )  # fmt: skip
    key = None
    if issue_key:
        ctx = OrgContext(admin, org, "owner", Actor("system"))
        _, key = await keys.create_key(
            session, ctx, cfg.pepper, name="make dev demo key", expires_in="never"
        )
    return DemoSeed(org_id=str(org.id), admin_email=admin.email, api_key=key)
