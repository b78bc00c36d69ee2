"""Each org's callback signing secret: created on first need, encrypted at rest, rotatable.

Created lazily (first portal read or first delivery) so an org that never uses callbacks
has no secret to protect, and a delivery never fails for want of one.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from domain.audit.service import SYSTEM, Actor, record
from domain.callbacks import repository as repo
from domain.callbacks.signing import new_secret
from domain.crypto import SecretBox
from schema.tasks import WebhookSecret

TARGET_TYPE = "webhook_secret"


@dataclass(frozen=True)
class WebhookSecretInfo:
    secret: str
    created_at: datetime | None
    rotated_at: datetime | None

    def __repr__(self) -> str:
        return f"WebhookSecretInfo(secret='***', created_at={self.created_at!r})"


async def load_or_create(
    session: AsyncSession, org_id: uuid.UUID, box: SecretBox, *, actor: Actor = SYSTEM
) -> WebhookSecretInfo:
    row = await repo.get_secret(session, org_id)
    if row is None:
        if await repo.insert_secret_if_absent(session, org_id, box.encrypt(new_secret())):
            await record(
                session, actor, "webhook_secret.created", org_id=org_id,
                target_type=TARGET_TYPE, target_id=org_id,
            )  # fmt: skip
        row = await repo.get_secret(session, org_id)
        assert row is not None
    return WebhookSecretInfo(box.decrypt(row.secret_ciphertext), row.created_at, row.rotated_at)


async def get_or_create(
    session: AsyncSession, org_id: uuid.UUID, box: SecretBox, *, actor: Actor = SYSTEM
) -> str:
    return (await load_or_create(session, org_id, box, actor=actor)).secret


async def rotate(session: AsyncSession, org_id: uuid.UUID, box: SecretBox, actor: Actor) -> str:
    """Replace the secret at once; deliveries after commit are signed with the new one.

    There is no overlap window (the table keeps one secret), so receivers should accept both
    while they switch; the audit event records when the switch happened, never the secrets.
    """
    before = await repo.lock_secret(session, org_id)
    secret = new_secret()
    await repo.replace_secret(session, org_id, box.encrypt(secret))
    await record(
        session, actor, "webhook_secret.rotated", org_id=org_id,
        target_type=TARGET_TYPE, target_id=org_id,
        before=_summary(before) if before is not None else None,
    )  # fmt: skip
    return secret


def _summary(row: WebhookSecret) -> dict[str, str | None]:
    return {
        "created_at": row.created_at.isoformat() if row.created_at else None,
        "rotated_at": row.rotated_at.isoformat() if row.rotated_at else None,
    }


@dataclass(frozen=True)
class SecretStatus:
    """What the console shows without the secret itself: whether one exists, and when."""

    exists: bool
    created_at: datetime | None = None
    rotated_at: datetime | None = None


async def status(session: AsyncSession, org_id: uuid.UUID) -> SecretStatus:
    row = await repo.get_secret(session, org_id)
    if row is None:
        return SecretStatus(False)
    return SecretStatus(True, row.created_at, row.rotated_at)


async def reveal(
    session: AsyncSession, org_id: uuid.UUID, box: SecretBox, actor: Actor
) -> WebhookSecretInfo:
    """The plaintext for a person who asked to see it, recorded as seen (when, by whom)."""
    info = await load_or_create(session, org_id, box, actor=actor)
    await record(
        session, actor, "webhook_secret.revealed", org_id=org_id,
        target_type=TARGET_TYPE, target_id=org_id,
    )  # fmt: skip
    return info
