"""What an operator may say about a channel: one model for `/admin/v1/channels` bodies and
the ops console's channel form, so both accept exactly the same channels."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from domain.inputs import Int32, ModelName, Text

Provider = Literal[
    "openai", "openai_compatible", "openrouter", "ollama", "anthropic", "google", "demo", "jobs"
]
ChannelType = Literal["chat", "image", "video", "audio", "embedding"]
# What the upstream speaks beyond chat: `responses_api` = it answers `POST {base}/responses`
# (provider `openai` always does), so Responses requests reach it as the client wrote them.
Capability = Literal["responses_api"]


MAX_MODELS = 1000
# An upstream's own name for a model; it is sent upstream and logged with each attempt.
UpstreamName = Annotated[Text, Field(min_length=1, max_length=200)]


class ChannelIn(BaseModel):
    name: Text = Field(min_length=1, max_length=200)
    provider: Provider
    base_url: Text | None = Field(default=None, max_length=500)
    secret: Text | None = Field(default=None, max_length=2000, description="write-only")
    models: list[ModelName] = Field(default_factory=list, max_length=MAX_MODELS)
    model_mapping: dict[ModelName, UpstreamName] = Field(
        default_factory=dict, max_length=MAX_MODELS
    )
    group: Text = Field(default="default", min_length=1, max_length=80)
    priority: Int32 = 0
    weight: Int32 = Field(default=1, ge=1, le=10_000)
    types: list[ChannelType] = Field(default_factory=lambda: list[ChannelType](["chat"]))
    capabilities: list[Capability] = Field(default_factory=list, max_length=8)
    enabled: bool = True
