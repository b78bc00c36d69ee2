"""The audit trail: who changed what, when, why, from where."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlmodel import Field, SQLModel

from schema.columns import bigserial_pk, fk_uuid, jsonb, ts


class AuditEvent(SQLModel, table=True):
    """Append-only record of every admin, key and money action."""

    __tablename__ = "audit_events"

    id: int | None = Field(default=None, sa_column=bigserial_pk())
    org_id: uuid.UUID | None = Field(
        default=None, sa_column=fk_uuid("orgs.id", nullable=True, ondelete="SET NULL")
    )
    actor_user_id: uuid.UUID | None = Field(
        default=None, sa_column=fk_uuid("users.id", nullable=True, ondelete="SET NULL")
    )
    actor_kind: str = Field(max_length=20)
    action: str = Field(max_length=80, index=True)
    target_type: str = Field(max_length=40)
    target_id: str | None = Field(default=None, max_length=80)
    before: dict[str, Any] | None = Field(default=None, sa_column=jsonb())
    after: dict[str, Any] | None = Field(default=None, sa_column=jsonb())
    reason: str | None = Field(default=None)
    ip: str | None = Field(default=None, max_length=64)
    created_at: datetime | None = Field(
        default=None, sa_column=ts(nullable=False, now=True, index=True)
    )
