"""Catalog shapes shared by the admin API, the portals' model list and the relay."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from domain.inputs import Int32, Int64, ModelName, PatchBody, Text, Timestamp
from domain.pricing.cost import PriceSnapshot

ModelType = Literal["chat", "image", "video", "audio", "embedding"]

# Typo guards far above any real price, low enough that a hold (tokens or units times price
# times the largest multipliers) always fits a BIGINT: (a 4 MiB prompt + 2^31 output
# tokens) x 10^9 x 2.4 < 2^63, and 100 units x 10^15 x 2.4 too.
MAX_TOKEN_PRICE = 10**9  # credits per 1M tokens: $1 a token
MAX_UNIT_PRICE_MICROS = 10**15  # a billion credits a unit
MAX_FALLBACKS = 20


class ModelInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: uuid.UUID
    name: str
    type: str
    provider: str | None
    description: str | None
    channel_group: str
    fallback_models: list[str]
    max_output_tokens: int | None
    context_window: int | None
    enabled: bool
    created_at: datetime


class NewModel(BaseModel):
    name: ModelName
    type: ModelType
    provider: Text | None = Field(default=None, max_length=40)
    description: Text | None = None
    channel_group: Text = Field(default="default", min_length=1, max_length=80)
    fallback_models: list[ModelName] = Field(default_factory=list, max_length=MAX_FALLBACKS)
    max_output_tokens: Int32 | None = Field(default=None, gt=0)
    context_window: Int32 | None = Field(default=None, gt=0)
    enabled: bool = True


class ModelPatch(PatchBody):
    """Only the fields a caller sets are changed (`model_fields_set`)."""

    nullable = frozenset({"provider", "description", "max_output_tokens", "context_window"})

    provider: Text | None = Field(default=None, max_length=40)
    description: Text | None = None
    channel_group: Text | None = Field(default=None, min_length=1, max_length=80)
    fallback_models: list[ModelName] | None = Field(default=None, max_length=MAX_FALLBACKS)
    max_output_tokens: Int32 | None = Field(default=None, gt=0)
    context_window: Int32 | None = Field(default=None, gt=0)
    enabled: bool | None = None


class NewPrice(BaseModel):
    """A price version. Token prices: credits per 1M tokens; media: micros per `unit`."""

    input_per_mtok: Int64 = Field(default=0, ge=0, le=MAX_TOKEN_PRICE)
    output_per_mtok: Int64 = Field(default=0, ge=0, le=MAX_TOKEN_PRICE)
    cached_input_per_mtok: Int64 = Field(default=0, ge=0, le=MAX_TOKEN_PRICE)
    unit: Text | None = Field(default=None, max_length=20)
    unit_price_micros: Int64 = Field(default=0, ge=0, le=MAX_UNIT_PRICE_MICROS)
    effective_from: Timestamp | None = None
    created_by: uuid.UUID | None = None


class CatalogModel(BaseModel):
    model_config = ConfigDict(frozen=True)

    model: ModelInfo
    price: PriceSnapshot | None
