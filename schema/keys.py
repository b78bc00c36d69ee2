"""Platform API keys (stored as peppered HMAC) and BYOK provider keys (stored encrypted)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, Column, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel

from schema.columns import fk_uuid, jsonb, micros, pk_uuid, sd, ts

BYOK_PROVIDERS = ("openai", "anthropic", "google", "openrouter", "ollama", "openai_compatible")


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_keys"
    __table_args__ = (
        CheckConstraint("budget_reserved_micros >= 0", name="budget_reserved_nonneg"),
        CheckConstraint("budget_spent_micros >= 0", name="budget_spent_nonneg"),
    )

    id: uuid.UUID = Field(sa_column=pk_uuid())
    org_id: uuid.UUID = Field(sa_column=fk_uuid("orgs.id", ondelete="CASCADE"))
    created_by: uuid.UUID | None = Field(
        default=None, sa_column=fk_uuid("users.id", nullable=True, ondelete="SET NULL")
    )
    name: str = Field(max_length=200)
    prefix: str = Field(max_length=20)
    key_hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False, unique=True))
    scopes: list[str] = Field(sa_column=jsonb(nullable=False, default="'[]'::jsonb"))
    model_allowlist: list[str] | None = Field(default=None, sa_column=jsonb())
    rpm_limit: int | None = Field(default=None)
    budget_micros: int | None = Field(default=None, sa_column=micros(nullable=True, default=None))
    budget_spent_micros: int = Field(default=0, sa_column=micros())
    budget_reserved_micros: int = Field(default=0, sa_column=micros())
    log_content: bool = Field(default=False, sa_column_kwargs=sd("false"))
    expires_at: datetime | None = Field(default=None, sa_column=ts())
    last_used_at: datetime | None = Field(default=None, sa_column=ts())
    revoked_at: datetime | None = Field(default=None, sa_column=ts())
    created_at: datetime | None = Field(default=None, sa_column=ts(nullable=False, now=True))


class ByokKey(SQLModel, table=True):
    __tablename__ = "byok_keys"
    __table_args__ = (
        UniqueConstraint("org_id", "provider"),
        CheckConstraint(f"provider IN {BYOK_PROVIDERS}", name="provider"),
    )

    id: uuid.UUID = Field(sa_column=pk_uuid())
    org_id: uuid.UUID = Field(sa_column=fk_uuid("orgs.id", ondelete="CASCADE"))
    provider: str = Field(max_length=40)
    label: str | None = Field(default=None, max_length=200)
    base_url: str | None = Field(default=None, max_length=500)
    secret_ciphertext: str
    key_hint: str = Field(max_length=40)
    enabled: bool = Field(default=True, sa_column_kwargs=sd("true"))
    created_at: datetime | None = Field(default=None, sa_column=ts(nullable=False, now=True))
    updated_at: datetime | None = Field(default=None, sa_column=ts(nullable=False, now=True))
