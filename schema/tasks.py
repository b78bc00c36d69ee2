"""Async media tasks and the callbacks that report on them (DESIGN.md §6)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, Index, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from schema.columns import bigserial_pk, fk_uuid, jsonb, micros, pk_uuid, sd, ts

TASK_TYPES = ("image", "video", "audio")
TASK_STATUSES = ("pending", "processing", "succeeded", "failed", "canceled")
# submitting: sent, or about to be, with no answer yet (or the answer was lost);
# accepted: the task's upstream job (or synchronous result) came from this attempt;
# refused: the provider answered with an error, so no job exists under its key;
# abandoned: no answer ever came and the task moved on; a job may still exist under its key;
# superseded: answered, but the task already had its job (or had ended): that job is an orphan.
SUBMISSION_STATES = ("submitting", "accepted", "refused", "abandoned", "superseded")
# found: an upstream job for the task that the task does not use, not yet cancelled;
# canceled: the provider stopped it; finished: it ran to the end before we could stop it;
# uncancelable: the provider offers no way to stop it; cancel_failed: to be tried again.
ORPHAN_STATES = ("found", "canceled", "finished", "uncancelable", "cancel_failed")
ORPHAN_REASONS = ("duplicate", "lost_race", "task_finished")


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


class TaskSubmission(SQLModel, table=True):
    """One attempt to hand a task to an upstream, written before the request leaves.

    The key sent upstream (`Idempotency-Key` header and, where the API has one, its client
    reference) is `task-{task id}-{attempt}`, so a worker that dies mid-call leaves enough
    behind for the next one to find the job instead of creating another. An attempt whose
    answer was lost is sent again under the same key (`sends` counts them).
    """

    __tablename__ = "task_submissions"
    __table_args__ = (
        CheckConstraint(f"state IN {SUBMISSION_STATES}", name="state"),
        CheckConstraint("attempt >= 1 AND sends >= 1", name="counts"),
        UniqueConstraint("task_id", "attempt"),
        # At most one attempt gives the task its job.
        Index(
            "uq_task_submissions_accepted",
            "task_id",
            unique=True,
            postgresql_where=text("state = 'accepted'"),
        ),
    )

    id: int | None = Field(default=None, sa_column=bigserial_pk())
    task_id: uuid.UUID = Field(sa_column=fk_uuid("tasks.id", ondelete="CASCADE", index=False))
    org_id: uuid.UUID = Field(sa_column=fk_uuid("orgs.id", ondelete="CASCADE", index=False))
    attempt: int
    idempotency_key: str = Field(max_length=200)
    channel_id: uuid.UUID | None = Field(default=None)
    provider: str = Field(max_length=40)
    state: str = Field(default="submitting", max_length=20, sa_column_kwargs=sd("'submitting'"))
    sends: int = Field(default=1, sa_column_kwargs=sd("1"))
    upstream_job_id: str | None = Field(default=None, max_length=200)
    # True when the job was found by looking it up after a lost answer, not in an answer.
    adopted: bool = Field(default=False, sa_column_kwargs=sd("false"))
    # A synchronous provider's answer (images, speech), kept until the task settles so a
    # retried activity returns it instead of paying for it again.
    outcome: dict[str, Any] | None = Field(default=None, sa_column=jsonb())
    error: str | None = Field(default=None, max_length=500)
    created_at: datetime | None = Field(default=None, sa_column=ts(nullable=False, now=True))
    last_sent_at: datetime | None = Field(default=None, sa_column=ts(nullable=False, now=True))
    resolved_at: datetime | None = Field(default=None, sa_column=ts())


class TaskOrphanJob(SQLModel, table=True):
    """An upstream job created for a task that the task does not use: found under one of its
    keys next to the adopted job, or answered to an attempt that lost the race to another.
    Each is cancelled upstream (the platform pays for it otherwise) and counted in
    `/metrics`."""

    __tablename__ = "task_orphan_jobs"
    __table_args__ = (
        CheckConstraint(f"state IN {ORPHAN_STATES}", name="state"),
        CheckConstraint(f"reason IN {ORPHAN_REASONS}", name="reason"),
        UniqueConstraint("task_id", "upstream_job_id"),
    )

    id: int | None = Field(default=None, sa_column=bigserial_pk())
    task_id: uuid.UUID = Field(sa_column=fk_uuid("tasks.id", ondelete="CASCADE", index=False))
    org_id: uuid.UUID = Field(sa_column=fk_uuid("orgs.id", ondelete="CASCADE", index=False))
    attempt: int | None = Field(default=None)
    idempotency_key: str | None = Field(default=None, max_length=200)
    channel_id: uuid.UUID | None = Field(default=None)
    provider: str = Field(max_length=40)
    upstream_job_id: str = Field(max_length=200)
    reason: str = Field(max_length=20)
    state: str = Field(default="found", max_length=20, sa_column_kwargs=sd("'found'"))
    error: str | None = Field(default=None, max_length=500)
    created_at: datetime | None = Field(default=None, sa_column=ts(nullable=False, now=True))
    resolved_at: datetime | None = Field(default=None, sa_column=ts())


class WebhookSecret(SQLModel, table=True):
    """The org's `whsec_` signing secret for callbacks, stored encrypted."""

    __tablename__ = "webhook_secrets"

    org_id: uuid.UUID = Field(sa_column=fk_uuid("orgs.id", ondelete="CASCADE", primary_key=True))
    secret_ciphertext: str
    created_at: datetime | None = Field(default=None, sa_column=ts(nullable=False, now=True))
    rotated_at: datetime | None = Field(default=None, sa_column=ts())


class CallbackAttempt(SQLModel, table=True):
    __tablename__ = "callback_attempts"
    __table_args__ = (
        Index("ix_callback_attempts_task", "task_id", "id"),
        # One row per attempt: a duplicated activity run records the first outcome only.
        UniqueConstraint("task_id", "event", "attempt"),
    )

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
