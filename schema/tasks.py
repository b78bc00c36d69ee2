"""Async media tasks and the callbacks that report on them (DESIGN.md §6)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, Index, text
from sqlmodel import Field, SQLModel

from schema.columns import bigserial_pk, fk_uuid, jsonb, micros, pk_uuid, sd, ts

TASK_TYPES = ("image", "video", "audio")
TASK_STATUSES = ("pending", "processing", "succeeded", "failed", "canceled")


class Task(SQLModel, table=True):
    __tablename__ = "tasks"
    __table_args__ = (
        CheckConstraint(f"type IN {TASK_TYPES}", name="type"),
        CheckConstraint(f"status IN {TASK_STATUSES}", name="status"),
        CheckConstraint("progress BETWEEN 0 AND 100", name="progress"),
        Index("ix_tasks_org_created", "org_id", "created_at"),
        Index(
            "uq_tasks_org_idempotency",
            "org_id",
            "idempotency_key",
            unique=True,
            postgresql_where=text("idempotency_key IS NOT NULL"),
        ),
    )

    id: uuid.UUID = Field(sa_column=pk_uuid())
    org_id: uuid.UUID = Field(sa_column=fk_uuid("orgs.id", ondelete="CASCADE", index=False))
    api_key_id: uuid.UUID | None = Field(
        default=None, sa_column=fk_uuid("api_keys.id", nullable=True, index=False)
    )
    request_id: str | None = Field(default=None, max_length=40)
    type: str = Field(max_length=20)
    model: str = Field(max_length=200)
    status: str = Field(default="pending", max_length=20, sa_column_kwargs=sd("'pending'"))
    progress: int = Field(default=0, sa_column_kwargs=sd("0"))
    input: dict[str, Any] = Field(sa_column=jsonb(nullable=False, default="'{}'::jsonb"))
    result: dict[str, Any] | None = Field(default=None, sa_column=jsonb())
    error: dict[str, Any] | None = Field(default=None, sa_column=jsonb())
    idempotency_key: str | None = Field(default=None, max_length=200)
    callback_url: str | None = Field(default=None, max_length=2000)
    hold_id: uuid.UUID | None = Field(default=None)
    estimate_micros: int = Field(default=0, sa_column=micros())
    charged_micros: int = Field(default=0, sa_column=micros())
    refunded_micros: int = Field(default=0, sa_column=micros())
    units: int | None = Field(default=None)
    price_snapshot: dict[str, Any] | None = Field(default=None, sa_column=jsonb())
    billing: str = Field(default="platform", max_length=20, sa_column_kwargs=sd("'platform'"))
    provider: str | None = Field(default=None, max_length=40)
    channel_id: uuid.UUID | None = Field(default=None)
    upstream_job_id: str | None = Field(default=None, max_length=200)
    workflow_id: str | None = Field(default=None, max_length=200)
    deadline_at: datetime | None = Field(default=None, sa_column=ts())
    created_at: datetime | None = Field(default=None, sa_column=ts(nullable=False, now=True))
    updated_at: datetime | None = Field(default=None, sa_column=ts(nullable=False, now=True))
    finished_at: datetime | None = Field(default=None, sa_column=ts())


class WebhookSecret(SQLModel, table=True):
    """The org's `whsec_` signing secret for callbacks, stored encrypted."""

    __tablename__ = "webhook_secrets"

    org_id: uuid.UUID = Field(sa_column=fk_uuid("orgs.id", ondelete="CASCADE", primary_key=True))
    secret_ciphertext: str
    created_at: datetime | None = Field(default=None, sa_column=ts(nullable=False, now=True))
    rotated_at: datetime | None = Field(default=None, sa_column=ts())


class CallbackAttempt(SQLModel, table=True):
    __tablename__ = "callback_attempts"
    __table_args__ = (Index("ix_callback_attempts_task", "task_id", "id"),)

    id: int | None = Field(default=None, sa_column=bigserial_pk())
    task_id: uuid.UUID = Field(sa_column=fk_uuid("tasks.id", ondelete="CASCADE", index=False))
    org_id: uuid.UUID = Field(sa_column=fk_uuid("orgs.id", ondelete="CASCADE", index=False))
    event: str = Field(max_length=40)
    webhook_id: str = Field(max_length=80)
    attempt: int
    url: str = Field(max_length=2000)
    http_status: int | None = Field(default=None)
    outcome: str = Field(max_length=30)
    error: str | None = Field(default=None)
    latency_ms: int = Field(default=0, sa_column_kwargs=sd("0"))
    response_excerpt: str | None = Field(default=None)
    created_at: datetime | None = Field(
        default=None, sa_column=ts(nullable=False, now=True, index=True)
    )
