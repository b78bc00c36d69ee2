"""Upstream channels: where the relay may send a model's traffic, and each one's breaker."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, Column, String
from sqlmodel import Field, SQLModel

from schema.columns import jsonb, pk_uuid, sd, ts

CHANNEL_PROVIDERS = (
    "openai", "openai_compatible", "openrouter", "ollama", "anthropic", "google", "demo", "jobs",
)  # fmt: skip
# `responses_api`: the base URL answers OpenAI's `POST /responses` (provider `openai` always
# does), so Responses requests are sent to it as the client wrote them.
CHANNEL_CAPABILITIES = ("responses_api",)
BREAKER_STATES = ("closed", "open", "half_open")


class Channel(SQLModel, table=True):
    __tablename__ = "channels"
    __table_args__ = (
        CheckConstraint(f"provider IN {CHANNEL_PROVIDERS}", name="provider"),
        CheckConstraint(f"breaker_state IN {BREAKER_STATES}", name="breaker_state"),
        CheckConstraint("weight >= 1", name="weight_positive"),
    )

    id: uuid.UUID = Field(sa_column=pk_uuid())
    name: str = Field(sa_column=Column(String(200), nullable=False, unique=True))
    provider: str = Field(max_length=40)
    base_url: str | None = Field(default=None, max_length=500)
    secret_ciphertext: str | None = Field(default=None)
    models: list[str] = Field(sa_column=jsonb(nullable=False, default="'[]'::jsonb"))
    model_mapping: dict[str, str] = Field(sa_column=jsonb(nullable=False, default="'{}'::jsonb"))
    group: str = Field(default="default", max_length=80, sa_column_kwargs=sd("'default'"))
    priority: int = Field(default=0, sa_column_kwargs=sd("0"))
    weight: int = Field(default=1, sa_column_kwargs=sd("1"))
    types: list[str] = Field(sa_column=jsonb(nullable=False, default="""'["chat"]'::jsonb"""))
    # What the upstream speaks beyond chat (`CHANNEL_CAPABILITIES`), e.g. `responses_api`.
    capabilities: list[str] = Field(sa_column=jsonb(nullable=False, default="'[]'::jsonb"))
    enabled: bool = Field(default=True, sa_column_kwargs=sd("true"))
    consecutive_failures: int = Field(default=0, sa_column_kwargs=sd("0"))
    breaker_state: str = Field(default="closed", max_length=20, sa_column_kwargs=sd("'closed'"))
    breaker_opened_at: datetime | None = Field(default=None, sa_column=ts())
    created_at: datetime | None = Field(default=None, sa_column=ts(nullable=False, now=True))
    updated_at: datetime | None = Field(default=None, sa_column=ts(nullable=False, now=True))
