"""Recording who did what. Callers write the event in the same transaction as the change,
so an action and its audit record commit or roll back together."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from domain.audit import repository


@dataclass(frozen=True)
class Actor:
    kind: str  # user | operator | system | api_key
    user_id: uuid.UUID | None = None
    ip: str | None = None

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.user_id}" if self.user_id else self.kind


SYSTEM = Actor(kind="system")


async def record(
    session: AsyncSession,
    actor: Actor,
    action: str,
    *,
    org_id: uuid.UUID | None,
    target_type: str,
    target_id: str | uuid.UUID | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    reason: str | None = None,
) -> int:
    return await repository.insert_event(
        session,
        {
            "org_id": org_id,
            "actor_user_id": actor.user_id,
            "actor_kind": actor.kind,
            "action": action,
            "target_type": target_type,
            "target_id": str(target_id) if target_id is not None else None,
            "before": before,
            "after": after,
            "reason": reason,
            "ip": actor.ip,
        },
    )
