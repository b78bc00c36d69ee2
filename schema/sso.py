"""Per-org OpenID Connect single sign-on: the org's provider, the email domains it proved it
owns, and the sign-ins between their start and finish.

Sign-ins live here rather than in a process's memory because the browser may come back from
the identity provider to any API replica.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, Column, Index, LargeBinary, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from schema.columns import fk_uuid, pk_uuid, sd, ts

SSO_ROLES = ("admin", "finance", "member")  # never owner: an IdP cannot mint owners


class SsoConfig(SQLModel, table=True):
    """One per org. The client secret is stored only as MultiFernet ciphertext."""

    __tablename__ = "sso_configs"
    __table_args__ = (CheckConstraint(f"default_role IN {SSO_ROLES}", name="default_role"),)

    org_id: uuid.UUID = Field(sa_column=fk_uuid("orgs.id", ondelete="CASCADE", primary_key=True))
    issuer: str = Field(max_length=2000)
    client_id: str = Field(max_length=255)
    client_secret_ciphertext: str
    client_secret_hint: str = Field(max_length=40)
    default_role: str = Field(default="member", max_length=20, sa_column_kwargs=sd("'member'"))
    require_sso: bool = Field(default=False, sa_column_kwargs=sd("false"))
    enabled: bool = Field(default=True, sa_column_kwargs=sd("true"))
    created_at: datetime | None = Field(default=None, sa_column=ts(nullable=False, now=True))
    updated_at: datetime | None = Field(default=None, sa_column=ts(nullable=False, now=True))


class SsoDomain(SQLModel, table=True):
    """An email domain an org claims. It routes sign-ins (and can require SSO) only once
    verified by a DNS TXT record, and a verified domain belongs to one org only."""

    __tablename__ = "sso_domains"
    __table_args__ = (
        UniqueConstraint("org_id", "domain"),
        Index(
            "uq_sso_domains_verified_domain",
            "domain",
            unique=True,
            postgresql_where=text("verified_at IS NOT NULL"),
        ),
    )

    id: uuid.UUID = Field(sa_column=pk_uuid())
    org_id: uuid.UUID = Field(sa_column=fk_uuid("orgs.id", ondelete="CASCADE"))
    domain: str = Field(max_length=253)
    verification_token: str = Field(max_length=64)
    verified_at: datetime | None = Field(default=None, sa_column=ts())
    created_at: datetime | None = Field(default=None, sa_column=ts(nullable=False, now=True))


class SsoLogin(SQLModel, table=True):
    """A sign-in between its start and its finish: single use and short-lived. The `state`
    is stored as its HMAC only; the nonce and PKCE verifier are needed in clear to finish."""

    __tablename__ = "sso_logins"

    id: uuid.UUID = Field(sa_column=pk_uuid())
    state_hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False, unique=True))
    org_id: uuid.UUID = Field(sa_column=fk_uuid("orgs.id", ondelete="CASCADE"))
    nonce: str = Field(max_length=128)
    code_verifier: str = Field(max_length=128)
    redirect_uri: str = Field(max_length=2000)
    return_to: str | None = Field(default=None, max_length=2000)
    created_at: datetime | None = Field(default=None, sa_column=ts(nullable=False, now=True))
    expires_at: datetime = Field(sa_column=ts(nullable=False, index=True))
    used_at: datetime | None = Field(default=None, sa_column=ts())
