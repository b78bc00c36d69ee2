"""Credit accounts, the append-only ledger and two-phase holds (DESIGN.md §3).

Every amount is BIGINT micro-credits. The CHECK constraints are the last line of defence:
a bug that would drive available credit negative fails the transaction instead of lending
money nobody has.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, Column, ForeignKey, Index, String, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from schema.columns import bigserial_pk, fk_uuid, jsonb, micros, pk_uuid, sd, ts

ENTRY_KINDS = ("purchase", "allocation", "bonus", "adjustment", "debit", "refund", "reversal")
HOLD_STATUSES = ("pending", "settled", "voided", "expired")


class CreditAccount(SQLModel, table=True):
    __tablename__ = "credit_accounts"
    __table_args__ = (
        CheckConstraint("available_micros >= 0", name="available_nonneg"),
        CheckConstraint("available_micros <= balance_micros", name="available_le_balance"),
    )

    org_id: uuid.UUID = Field(sa_column=fk_uuid("orgs.id", ondelete="RESTRICT", primary_key=True))
    balance_micros: int = Field(default=0, sa_column=micros())
    available_micros: int = Field(default=0, sa_column=micros())
    version: int = Field(default=0, sa_column_kwargs=sd("0"))
    updated_at: datetime | None = Field(default=None, sa_column=ts(nullable=False, now=True))


class LedgerEntry(SQLModel, table=True):
    __tablename__ = "ledger_entries"
    __table_args__ = (
        CheckConstraint(f"kind IN {ENTRY_KINDS}", name="kind"),
        Index("ix_ledger_entries_org_created", "org_id", "created_at"),
        Index("ix_ledger_entries_org_id_desc", "org_id", "id"),
        Index("ix_ledger_entries_hold", "hold_id"),
        # One refund per debit, enforced by the database and found by index.
        Index(
            "uq_ledger_entries_refunds_entry",
            "refunds_entry_id",
            unique=True,
            postgresql_where=text("refunds_entry_id IS NOT NULL"),
        ),
    )

    id: int | None = Field(default=None, sa_column=bigserial_pk())
    org_id: uuid.UUID = Field(sa_column=fk_uuid("orgs.id", ondelete="RESTRICT", index=False))
    kind: str = Field(max_length=20)
    amount_micros: int = Field(sa_column=micros(default=None))
    balance_after_micros: int = Field(sa_column=micros(default=None))
    idempotency_key: str = Field(sa_column=Column(String(200), nullable=False, unique=True))
    actor: str = Field(max_length=120)
    reason: str | None = Field(default=None)
    api_key_id: uuid.UUID | None = Field(
        default=None, sa_column=fk_uuid("api_keys.id", nullable=True, index=False)
    )
    hold_id: uuid.UUID | None = Field(
        default=None, sa_column=fk_uuid("holds.id", nullable=True, index=False)
    )
    reference: str | None = Field(default=None, max_length=120, index=True)
    refunds_entry_id: int | None = Field(
        default=None,
        sa_column=Column(BigInteger, ForeignKey("ledger_entries.id"), nullable=True),
    )
    details: dict[str, Any] | None = Field(default=None, sa_column=jsonb())
    created_at: datetime | None = Field(default=None, sa_column=ts(nullable=False, now=True))


class Hold(SQLModel, table=True):
    __tablename__ = "holds"
    __table_args__ = (
        CheckConstraint(f"status IN {HOLD_STATUSES}", name="status"),
        CheckConstraint("amount_micros >= 0", name="amount_nonneg"),
        Index(
            "ix_holds_pending_expiry",
            "expires_at",
            postgresql_where=text("status = 'pending'"),
        ),
    )

    id: uuid.UUID = Field(sa_column=pk_uuid())
    org_id: uuid.UUID = Field(sa_column=fk_uuid("orgs.id", ondelete="RESTRICT"))
    api_key_id: uuid.UUID | None = Field(
        default=None, sa_column=fk_uuid("api_keys.id", nullable=True, index=False)
    )
    amount_micros: int = Field(sa_column=micros(default=None))
    key_budget_micros: int = Field(default=0, sa_column=micros())
    # None is SQL NULL (not JSON null), on every path that writes a hold.
    budget_reservations: list[dict[str, Any]] | None = Field(
        default=None, sa_column=Column(JSONB(none_as_null=True), nullable=True)
    )
    status: str = Field(default="pending", max_length=20, sa_column_kwargs=sd("'pending'"))
    idempotency_key: str = Field(sa_column=Column(String(200), nullable=False, unique=True))
    reference: str | None = Field(default=None, max_length=120)
    settled_micros: int | None = Field(default=None, sa_column=micros(nullable=True, default=None))
    uncollected_micros: int = Field(default=0, sa_column=micros())
    expires_at: datetime = Field(sa_column=ts(nullable=False))
    created_at: datetime | None = Field(default=None, sa_column=ts(nullable=False, now=True))
    resolved_at: datetime | None = Field(default=None, sa_column=ts())
