"""What the relay remembers of each call: the log, its upstream attempts, optional content,
and the per-key rate-limit windows shared by every API replica."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Column, DateTime, Index, String, text
from sqlmodel import Field, SQLModel

from schema.columns import bigserial_pk, fk_uuid, jsonb, micros, sd, ts

CHARGED_CLIENT_REQUEST_INDEX = "uq_request_logs_org_client_request_charged"
CHARGED_CLIENT_REQUEST_WHERE = (
    "client_request_id IS NOT NULL AND status = 'succeeded' AND cost_micros > 0"
)


class RequestLog(SQLModel, table=True):
    __tablename__ = "request_logs"
    __table_args__ = (
        Index("ix_request_logs_org_created", "org_id", "created_at"),
        Index("ix_request_logs_key_created", "api_key_id", "created_at"),
        # A client's request id is charged for one complete answer at most: a retry with
        # the same `X-Client-Request-ID` is never billed twice (domain.relay.billing).
        Index(
            CHARGED_CLIENT_REQUEST_INDEX,
            "org_id",
            "client_request_id",
            unique=True,
            postgresql_where=text(CHARGED_CLIENT_REQUEST_WHERE),
        ),
    )

    id: str = Field(sa_column=Column(String(40), primary_key=True))
    org_id: uuid.UUID = Field(sa_column=fk_uuid("orgs.id", ondelete="CASCADE", index=False))
    api_key_id: uuid.UUID | None = Field(
        default=None, sa_column=fk_uuid("api_keys.id", nullable=True, index=False)
    )
    client_request_id: str | None = Field(default=None, max_length=200)
    upstream_request_id: str | None = Field(default=None, max_length=200)
    kind: str = Field(default="chat", max_length=20, sa_column_kwargs=sd("'chat'"))
    model: str = Field(max_length=200)
    channel_id: uuid.UUID | None = Field(default=None)
    status: str = Field(max_length=20)
    http_status: int
    error_code: str | None = Field(default=None, max_length=60)
    error_message: str | None = Field(default=None)
    prompt_tokens: int = Field(default=0, sa_column_kwargs=sd("0"))
    completion_tokens: int = Field(default=0, sa_column_kwargs=sd("0"))
    cached_tokens: int = Field(default=0, sa_column_kwargs=sd("0"))
    cost_micros: int = Field(default=0, sa_column=micros())
    list_cost_micros: int = Field(default=0, sa_column=micros())
    uncollected_micros: int = Field(default=0, sa_column=micros())
    billing: str = Field(default="platform", max_length=20, sa_column_kwargs=sd("'platform'"))
    stream: bool = Field(default=False, sa_column_kwargs=sd("false"))
    estimated: bool = Field(default=False, sa_column_kwargs=sd("false"))
    client_disconnected: bool = Field(default=False, sa_column_kwargs=sd("false"))
    latency_ms: int = Field(default=0, sa_column_kwargs=sd("0"))
    hold_id: uuid.UUID | None = Field(default=None)
    price_snapshot: dict[str, Any] | None = Field(default=None, sa_column=jsonb())
    created_at: datetime | None = Field(default=None, sa_column=ts(nullable=False, now=True))


class RequestAttempt(SQLModel, table=True):
    """One upstream try; admin-only (channels, raw errors and upstream headers live here)."""

    __tablename__ = "request_attempts"

    id: int | None = Field(default=None, sa_column=bigserial_pk())
    request_id: str = Field(sa_column=Column(String(40), nullable=False, index=True))
    channel_id: uuid.UUID | None = Field(default=None)
    provider: str = Field(max_length=40)
    byok: bool = Field(default=False, sa_column_kwargs=sd("false"))
    model: str = Field(max_length=200)
    http_status: int | None = Field(default=None)
    outcome: str = Field(max_length=30)
    latency_ms: int = Field(default=0, sa_column_kwargs=sd("0"))
    error: str | None = Field(default=None)
    upstream_request_id: str | None = Field(default=None, max_length=200)
    diagnostics: dict[str, Any] | None = Field(default=None, sa_column=jsonb())
    created_at: datetime | None = Field(default=None, sa_column=ts(nullable=False, now=True))


class RequestDetail(SQLModel, table=True):
    """Prompt and response, kept only for keys with content logging on; retention deletes."""

    __tablename__ = "request_details"

    request_id: str = Field(sa_column=Column(String(40), primary_key=True))
    org_id: uuid.UUID = Field(sa_column=fk_uuid("orgs.id", ondelete="CASCADE"))
    prompt: dict[str, Any] | None = Field(default=None, sa_column=jsonb())
    response: dict[str, Any] | None = Field(default=None, sa_column=jsonb())
    created_at: datetime | None = Field(
        default=None, sa_column=ts(nullable=False, now=True, index=True)
    )


class RateLimitWindow(SQLModel, table=True):
    """Requests per key per minute; a fixed window row that every replica increments."""

    __tablename__ = "rate_limit_windows"

    api_key_id: uuid.UUID = Field(primary_key=True)
    window_start: datetime = Field(sa_column=Column(DateTime(timezone=True), primary_key=True))
    count: int = Field(default=0, sa_column_kwargs=sd("0"))
