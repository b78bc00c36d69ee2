"""Task results copied into 0xinf's result store (DESIGN.md §6): one row per stored object.

Provider URLs expire, so a succeeded task's results are copied into the store under the
deterministic key `tasks/{task id}/{index}` before the task is marked succeeded. The row is
written after the object is complete, so a row in `stored` always names a whole object; a
retried copy overwrites the same key and skips indexes already stored. Retention deletes the
object and keeps the row as `deleted`. A copy that gave up is a `failed` row, for operators.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, Column, Index, text
from sqlmodel import Field, SQLModel

from schema.columns import fk_uuid, ts

RESULT_STATES = ("stored", "failed", "deleted")


class TaskResult(SQLModel, table=True):
    __tablename__ = "task_results"
    __table_args__ = (
        CheckConstraint(f"state IN {RESULT_STATES}", name="state"),
        CheckConstraint("idx >= 0", name="idx"),
        # What the nightly retention looks for: stored objects, oldest first.
        Index(
            "ix_task_results_stored_at",
            "stored_at",
            postgresql_where=text("state = 'stored'"),
        ),
        # What `/metrics` counts: copies that gave up (rare, so the index stays tiny).
        Index(
            "ix_task_results_failed",
            "created_at",
            postgresql_where=text("state = 'failed'"),
        ),
    )

    task_id: uuid.UUID = Field(sa_column=fk_uuid("tasks.id", ondelete="CASCADE", primary_key=True))
    idx: int = Field(primary_key=True)
    org_id: uuid.UUID = Field(sa_column=fk_uuid("orgs.id", ondelete="CASCADE", index=False))
    state: str = Field(max_length=20)
    object_key: str = Field(max_length=300)
    content_type: str | None = Field(default=None, max_length=200)
    size_bytes: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    error: str | None = Field(default=None, max_length=500)
    created_at: datetime | None = Field(default=None, sa_column=ts(nullable=False, now=True))
    stored_at: datetime | None = Field(default=None, sa_column=ts())
    deleted_at: datetime | None = Field(default=None, sa_column=ts())
