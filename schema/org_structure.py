"""How an enterprise org is organised and governed: departments, cost centers, budgets.

A member belongs to at most one department and one cost center; a platform key inherits
both from the member who created it. Department policies (model allowlist, content
logging) and budget policies apply to the keys they reach that way.

Budget counters live per policy and calendar month (`budget_usage`), so a new month starts
at zero without any job resetting anything, and a hard limit is one guarded UPDATE of one
row: the same conditional-write pattern as key budgets (DESIGN.md §3).
"""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import CheckConstraint, Column, Date, Index, Integer, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import Field, SQLModel

from schema.columns import fk_uuid, jsonb, micros, pk_uuid, sd, ts

CONTENT_LOGGING = ("key", "disabled", "enabled")
BUDGET_SCOPES = ("department", "member", "key", "cost_center")
BUDGET_MODES = ("hard", "soft")


class Department(SQLModel, table=True):
    __tablename__ = "departments"
    __table_args__ = (
        Index("uq_departments_org_name", "org_id", text("lower(name)"), unique=True),
        CheckConstraint(f"content_logging IN {CONTENT_LOGGING}", name="content_logging"),
    )

    id: uuid.UUID = Field(sa_column=pk_uuid())
    org_id: uuid.UUID = Field(sa_column=fk_uuid("orgs.id", ondelete="CASCADE", index=False))
    name: str = Field(max_length=200)
    # Policy: None allows every model the key allows; a list narrows it further.
    model_allowlist: list[str] | None = Field(default=None, sa_column=jsonb())
    # "key": each key's own flag decides; "disabled": never store prompts; "enabled": always.
    content_logging: str = Field(default="key", max_length=20, sa_column_kwargs=sd("'key'"))
    created_at: datetime | None = Field(default=None, sa_column=ts(nullable=False, now=True))
    updated_at: datetime | None = Field(default=None, sa_column=ts(nullable=False, now=True))
    # Archived: kept for its members, budgets and history, offered for nothing new.
    archived_at: datetime | None = Field(default=None, sa_column=ts())


class CostCenter(SQLModel, table=True):
    __tablename__ = "cost_centers"
    __table_args__ = (
        Index("uq_cost_centers_org_code", "org_id", text("lower(code)"), unique=True),
    )

    id: uuid.UUID = Field(sa_column=pk_uuid())
    org_id: uuid.UUID = Field(sa_column=fk_uuid("orgs.id", ondelete="CASCADE", index=False))
    code: str = Field(max_length=200)
    name: str | None = Field(default=None, max_length=200)
    created_at: datetime | None = Field(default=None, sa_column=ts(nullable=False, now=True))
    archived_at: datetime | None = Field(default=None, sa_column=ts())


class OrgInvite(SQLModel, table=True):
    """An invitation to join an org, accepted through a link that carries its token.

    Only the token's peppered digest is stored (like sessions and keys), so the link is
    shown once, to the admin who made it. It works once, for the invited email, until it
    expires or is revoked.
    """

    __tablename__ = "org_invites"
    __table_args__ = (Index("ix_org_invites_org_created", "org_id", "created_at"),)

    id: uuid.UUID = Field(sa_column=pk_uuid())
    org_id: uuid.UUID = Field(sa_column=fk_uuid("orgs.id", ondelete="CASCADE", index=False))
    email: str = Field(max_length=320)
    role: str = Field(max_length=20)
    department_id: uuid.UUID | None = Field(
        default=None, sa_column=fk_uuid("departments.id", nullable=True, ondelete="SET NULL")
    )
    cost_center_id: uuid.UUID | None = Field(
        default=None, sa_column=fk_uuid("cost_centers.id", nullable=True, ondelete="SET NULL")
    )
    token_hash: bytes = Field(unique=True)
    created_by: uuid.UUID | None = Field(
        default=None, sa_column=fk_uuid("users.id", nullable=True, ondelete="SET NULL")
    )
    created_at: datetime | None = Field(default=None, sa_column=ts(nullable=False, now=True))
    expires_at: datetime = Field(sa_column=ts(nullable=False))
    accepted_at: datetime | None = Field(default=None, sa_column=ts())
    accepted_by: uuid.UUID | None = Field(
        default=None, sa_column=fk_uuid("users.id", nullable=True, ondelete="SET NULL")
    )
    revoked_at: datetime | None = Field(default=None, sa_column=ts())


class BudgetPolicy(SQLModel, table=True):
    __tablename__ = "budget_policies"
    __table_args__ = (
        CheckConstraint(f"scope IN {BUDGET_SCOPES}", name="scope"),
        CheckConstraint(f"mode IN {BUDGET_MODES}", name="mode"),
        CheckConstraint("limit_micros > 0", name="limit_positive"),
        Index("ix_budget_policies_org_scope", "org_id", "scope", "scope_id"),
    )

    id: uuid.UUID = Field(sa_column=pk_uuid())
    org_id: uuid.UUID = Field(sa_column=fk_uuid("orgs.id", ondelete="CASCADE", index=False))
    name: str = Field(max_length=200)
    scope: str = Field(max_length=20)
    scope_id: uuid.UUID  # a department, user, api key or cost center of the same org
    limit_micros: int = Field(sa_column=micros(default=None))
    mode: str = Field(max_length=10)
    alert_thresholds: list[int] = Field(
        sa_column=Column(ARRAY(Integer), nullable=False, server_default=text("'{}'"))
    )
    enabled: bool = Field(default=True, sa_column_kwargs=sd("true"))
    created_at: datetime | None = Field(default=None, sa_column=ts(nullable=False, now=True))
    updated_at: datetime | None = Field(default=None, sa_column=ts(nullable=False, now=True))


class BudgetUsage(SQLModel, table=True):
    """Spent and reserved micro-credits of one policy in one calendar month (UTC)."""

    __tablename__ = "budget_usage"
    __table_args__ = (
        CheckConstraint("spent_micros >= 0", name="spent_nonneg"),
        CheckConstraint("reserved_micros >= 0", name="reserved_nonneg"),
    )

    policy_id: uuid.UUID = Field(
        sa_column=fk_uuid("budget_policies.id", ondelete="CASCADE", primary_key=True)
    )
    period: date = Field(sa_column=Column(Date, primary_key=True))
    spent_micros: int = Field(default=0, sa_column=micros())
    reserved_micros: int = Field(default=0, sa_column=micros())


class BudgetAlert(SQLModel, table=True):
    """A threshold crossed, recorded once per policy, month and threshold."""

    __tablename__ = "budget_alerts"
    __table_args__ = (UniqueConstraint("policy_id", "period", "threshold_pct"),)

    id: uuid.UUID = Field(sa_column=pk_uuid())
    org_id: uuid.UUID = Field(sa_column=fk_uuid("orgs.id", ondelete="CASCADE"))
    policy_id: uuid.UUID = Field(
        sa_column=fk_uuid("budget_policies.id", ondelete="CASCADE", index=False)
    )
    period: date = Field(sa_column=Column(Date, nullable=False))
    threshold_pct: int
    spent_micros: int = Field(sa_column=micros(default=None))
    limit_micros: int = Field(sa_column=micros(default=None))
    created_at: datetime | None = Field(default=None, sa_column=ts(nullable=False, now=True))
