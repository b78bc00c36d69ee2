"""Tenants and people: users, orgs, memberships, portal sessions, login throttling."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, Index, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from schema.columns import fk_uuid, pk_uuid, sd, ts

ROLES = ("owner", "admin", "finance", "member")
TIERS = ("free", "trial", "starter", "professional", "enterprise")
POWER_LEVELS = ("eco", "balanced", "precision")


class User(SQLModel, table=True):
    __tablename__ = "users"
    __table_args__ = (Index("uq_users_email_lower", text("lower(email)"), unique=True),)

    id: uuid.UUID = Field(sa_column=pk_uuid())
    email: str = Field(max_length=320)
    # None for users who only sign in through their org's single sign-on.
    password_hash: str | None = Field(default=None, max_length=100)
    is_operator: bool = Field(default=False, sa_column_kwargs=sd("false"))
    # The org a session acts in when it names none (`make dev` makes it the demo org);
    # unset: the personal org.
    default_org_id: uuid.UUID | None = Field(
        default=None, sa_column=fk_uuid("orgs.id", nullable=True, index=False, ondelete="SET NULL")
    )
    created_at: datetime | None = Field(default=None, sa_column=ts(nullable=False, now=True))
    disabled_at: datetime | None = Field(default=None, sa_column=ts())


class Org(SQLModel, table=True):
    __tablename__ = "orgs"
    __table_args__ = (
        CheckConstraint(f"tier IN {TIERS}", name="tier"),
        CheckConstraint(f"power_level IN {POWER_LEVELS}", name="power_level"),
        CheckConstraint("retention_days BETWEEN 1 AND 3650", name="retention_days"),
    )

    id: uuid.UUID = Field(sa_column=pk_uuid())
    name: str = Field(max_length=200)
    personal: bool = Field(default=False, sa_column_kwargs=sd("false"))
    tier: str = Field(default="free", max_length=20, sa_column_kwargs=sd("'free'"))
    power_level: str = Field(default="balanced", max_length=20, sa_column_kwargs=sd("'balanced'"))
    byok_fallback: bool = Field(default=False, sa_column_kwargs=sd("false"))
    retention_days: int = Field(default=30, sa_column_kwargs=sd("30"))
    created_at: datetime | None = Field(default=None, sa_column=ts(nullable=False, now=True))


class Membership(SQLModel, table=True):
    __tablename__ = "memberships"
    __table_args__ = (
        UniqueConstraint("user_id", "org_id"),
        CheckConstraint(f"role IN {ROLES}", name="role"),
    )

    id: uuid.UUID = Field(sa_column=pk_uuid())
    user_id: uuid.UUID = Field(sa_column=fk_uuid("users.id", ondelete="CASCADE"))
    org_id: uuid.UUID = Field(sa_column=fk_uuid("orgs.id", ondelete="CASCADE"))
    role: str = Field(max_length=20)
    department_id: uuid.UUID | None = Field(
        default=None, sa_column=fk_uuid("departments.id", nullable=True, ondelete="SET NULL")
    )
    cost_center_id: uuid.UUID | None = Field(
        default=None, sa_column=fk_uuid("cost_centers.id", nullable=True, ondelete="SET NULL")
    )
    created_at: datetime | None = Field(default=None, sa_column=ts(nullable=False, now=True))


class PortalSession(SQLModel, table=True):
    """An opaque bearer token for the portals, stored only as its HMAC."""

    __tablename__ = "portal_sessions"

    id: uuid.UUID = Field(sa_column=pk_uuid())
    token_hash: bytes = Field(unique=True)
    user_id: uuid.UUID = Field(sa_column=fk_uuid("users.id", ondelete="CASCADE"))
    created_at: datetime | None = Field(default=None, sa_column=ts(nullable=False, now=True))
    expires_at: datetime = Field(sa_column=ts(nullable=False))
    revoked_at: datetime | None = Field(default=None, sa_column=ts())
    ip: str | None = Field(default=None, max_length=64)


class LoginThrottle(SQLModel, table=True):
    """Consecutive login failures per subject (`email:…` or `ip:…`), shared by all replicas."""

    __tablename__ = "login_throttles"

    subject: str = Field(primary_key=True, max_length=400)
    failures: int = Field(default=0, sa_column_kwargs=sd("0"))
    locked_until: datetime | None = Field(default=None, sa_column=ts())
    updated_at: datetime | None = Field(default=None, sa_column=ts(nullable=False, now=True))
