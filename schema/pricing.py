"""The model catalog and its versioned prices (DESIGN.md §3).

Token prices are integer credits per 1M tokens, which is numerically micro-credits per
token; media prices are integer micro-credits per unit (image, video second, 1K characters).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, Column, Index, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from schema.columns import fk_uuid, jsonb, micros, pk_uuid, sd, ts

MODEL_TYPES = ("chat", "image", "video", "audio", "embedding")


class Model(SQLModel, table=True):
    __tablename__ = "models"
    __table_args__ = (CheckConstraint(f"type IN {MODEL_TYPES}", name="type"),)

    id: uuid.UUID = Field(sa_column=pk_uuid())
    name: str = Field(sa_column=Column(String(200), nullable=False, unique=True))
    type: str = Field(max_length=20)
    provider: str | None = Field(default=None, max_length=40)
    description: str | None = Field(default=None)
    channel_group: str = Field(default="default", max_length=80, sa_column_kwargs=sd("'default'"))
    fallback_models: list[str] = Field(sa_column=jsonb(nullable=False, default="'[]'::jsonb"))
    max_output_tokens: int | None = Field(default=None)
    context_window: int | None = Field(default=None)
    enabled: bool = Field(default=True, sa_column_kwargs=sd("true"))
    created_at: datetime | None = Field(default=None, sa_column=ts(nullable=False, now=True))


class ModelPrice(SQLModel, table=True):
    __tablename__ = "model_prices"
    __table_args__ = (
        UniqueConstraint("model_id", "effective_from"),
        Index("ix_model_prices_model_effective", "model_id", "effective_from"),
        CheckConstraint(
            "input_per_mtok >= 0 AND output_per_mtok >= 0 AND cached_input_per_mtok >= 0"
            " AND unit_price_micros >= 0",
            name="nonneg",
        ),
    )

    id: uuid.UUID = Field(sa_column=pk_uuid())
    model_id: uuid.UUID = Field(sa_column=fk_uuid("models.id", ondelete="CASCADE", index=False))
    effective_from: datetime = Field(sa_column=ts(nullable=False))
    input_per_mtok: int = Field(default=0, sa_column=micros())
    output_per_mtok: int = Field(default=0, sa_column=micros())
    cached_input_per_mtok: int = Field(default=0, sa_column=micros())
    unit: str | None = Field(default=None, max_length=20)
    unit_price_micros: int = Field(default=0, sa_column=micros())
    created_by: uuid.UUID | None = Field(
        default=None, sa_column=fk_uuid("users.id", nullable=True, index=False, ondelete="SET NULL")
    )
    created_at: datetime | None = Field(default=None, sa_column=ts(nullable=False, now=True))
