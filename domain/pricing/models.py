"""Catalog shapes shared by the admin API, the portals' model list and the relay."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from domain.pricing.cost import PriceSnapshot

ModelType = Literal["chat", "image", "video", "audio"]


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
    name: str = Field(min_length=1, max_length=200)
    type: ModelType
    provider: str | None = Field(default=None, max_length=40)
    description: str | None = None
    channel_group: str = Field(default="default", min_length=1, max_length=80)
    fallback_models: list[str] = Field(default_factory=list)
    max_output_tokens: int | None = Field(default=None, gt=0)
    context_window: int | None = Field(default=None, gt=0)
    enabled: bool = True


class ModelPatch(BaseModel):
    """Only the fields a caller sets are changed (`model_fields_set`)."""

    provider: str | None = Field(default=None, max_length=40)
    description: str | None = None
    channel_group: str | None = Field(default=None, min_length=1, max_length=80)
    fallback_models: list[str] | None = None
    max_output_tokens: int | None = Field(default=None, gt=0)
    context_window: int | None = Field(default=None, gt=0)
    enabled: bool | None = None


class NewPrice(BaseModel):
    """A price version. Token prices: credits per 1M tokens; media: micros per `unit`."""

    input_per_mtok: int = Field(default=0, ge=0)
    output_per_mtok: int = Field(default=0, ge=0)
    cached_input_per_mtok: int = Field(default=0, ge=0)
    unit: str | None = Field(default=None, max_length=20)
    unit_price_micros: int = Field(default=0, ge=0)
    effective_from: datetime | None = None
    created_by: uuid.UUID | None = None


class CatalogModel(BaseModel):
    model_config = ConfigDict(frozen=True)

    model: ModelInfo
    price: PriceSnapshot | None
