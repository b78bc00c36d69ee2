"""Money coming in (Stripe) and the org billing settings behind auto-recharge (DESIGN.md §7)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, Column, Index, String
from sqlmodel import Field, SQLModel

from schema.columns import fk_uuid, jsonb, micros, pk_uuid, sd, ts

PAYMENT_STATUSES = ("pending", "paid", "failed", "expired", "refunded", "disputed")


class Payment(SQLModel, table=True):
    __tablename__ = "payments"
    __table_args__ = (CheckConstraint(f"status IN {PAYMENT_STATUSES}", name="status"),)

    id: uuid.UUID = Field(sa_column=pk_uuid())
    org_id: uuid.UUID = Field(sa_column=fk_uuid("orgs.id", ondelete="RESTRICT"))
    kind: str = Field(default="checkout", max_length=20, sa_column_kwargs=sd("'checkout'"))
    checkout_session_id: str | None = Field(
        default=None, sa_column=Column(String(200), nullable=True, unique=True)
    )
    payment_intent_id: str | None = Field(
        default=None, sa_column=Column(String(200), nullable=True, unique=True)
    )
    charge_id: str | None = Field(default=None, max_length=200, index=True)
    package_id: str = Field(max_length=60)
    amount_cents: int
    currency: str = Field(default="usd", max_length=10, sa_column_kwargs=sd("'usd'"))
    credits_micros: int = Field(sa_column=micros(default=None))
    status: str = Field(default="pending", max_length=20, sa_column_kwargs=sd("'pending'"))
    ledger_entry_id: int | None = Field(default=None)
    reversed_micros: int = Field(default=0, sa_column=micros())
    uncollected_micros: int = Field(default=0, sa_column=micros())
    # Stripe dispute id -> what that dispute took, left uncollected and how it closed
    # (domain.payments.models.DisputeState); the events module keeps it.
    disputes: dict[str, Any] = Field(
        default_factory=dict, sa_column=jsonb(nullable=False, default="'{}'::jsonb")
    )
    created_by: uuid.UUID | None = Field(default=None)
    created_at: datetime | None = Field(default=None, sa_column=ts(nullable=False, now=True))
    updated_at: datetime | None = Field(default=None, sa_column=ts(nullable=False, now=True))


class StripeEvent(SQLModel, table=True):
    """Every verified webhook event id, once: the first insert wins, replays are no-ops."""

    __tablename__ = "stripe_events"

    id: str = Field(sa_column=Column(String(200), primary_key=True))
    type: str = Field(max_length=100)
    payload: dict[str, Any] = Field(sa_column=jsonb(nullable=False))
    received_at: datetime | None = Field(default=None, sa_column=ts(nullable=False, now=True))
    processed_at: datetime | None = Field(default=None, sa_column=ts())


class OrgBilling(SQLModel, table=True):
    __tablename__ = "org_billing"

    org_id: uuid.UUID = Field(sa_column=fk_uuid("orgs.id", ondelete="CASCADE", primary_key=True))
    stripe_customer_id: str | None = Field(default=None, max_length=200)
    default_payment_method: str | None = Field(default=None, max_length=200)
    auto_recharge: bool = Field(default=False, sa_column_kwargs=sd("false"))
    recharge_threshold_micros: int = Field(default=0, sa_column=micros())
    recharge_package_id: str | None = Field(default=None, max_length=60)
    allocation_credits_override: int | None = Field(default=None)
    updated_at: datetime | None = Field(default=None, sa_column=ts(nullable=False, now=True))


class UsageMonthly(SQLModel, table=True):
    """Monthly rollup of request logs, so usage stays right after retention trims details."""

    __tablename__ = "usage_monthly"
    __table_args__ = (
        Index(
            "uq_usage_monthly_bucket",
            "org_id",
            "api_key_id",
            "model",
            "month",
            unique=True,
            postgresql_nulls_not_distinct=True,
        ),
    )

    id: uuid.UUID = Field(sa_column=pk_uuid())
    org_id: uuid.UUID = Field(sa_column=fk_uuid("orgs.id", ondelete="CASCADE", index=False))
    api_key_id: uuid.UUID | None = Field(default=None)
    model: str = Field(max_length=200)
    month: datetime = Field(sa_column=ts(nullable=False))
    requests: int = Field(default=0, sa_column_kwargs=sd("0"))
    failed_requests: int = Field(default=0, sa_column_kwargs=sd("0"))
    prompt_tokens: int = Field(default=0, sa_column=micros())
    completion_tokens: int = Field(default=0, sa_column=micros())
    cost_micros: int = Field(default=0, sa_column=micros())
    byok_requests: int = Field(default=0, sa_column_kwargs=sd("0"))
    updated_at: datetime | None = Field(default=None, sa_column=ts(nullable=False, now=True))


SUBSCRIPTION_STATUSES = (
    "incomplete",
    "incomplete_expired",
    "trialing",
    "active",
    "past_due",
    "unpaid",
    "canceled",
    "paused",
)


class OrgSubscription(SQLModel, table=True):
    """An org's plan as a Stripe subscription (DESIGN.md §4): one per org, the latest one.

    `state_at` is the Stripe `created` time of the event whose state this row holds, so an
    older event arriving late never overwrites a newer state.
    """

    __tablename__ = "org_subscriptions"
    __table_args__ = (
        CheckConstraint(f"status IN {SUBSCRIPTION_STATUSES}", name="status"),
        Index("uq_org_subscriptions_subscription", "stripe_subscription_id", unique=True),
    )

    org_id: uuid.UUID = Field(sa_column=fk_uuid("orgs.id", ondelete="CASCADE", primary_key=True))
    stripe_subscription_id: str = Field(max_length=200)
    stripe_customer_id: str | None = Field(default=None, max_length=200)
    tier: str = Field(max_length=20)
    # A downgrade waits for the end of the period already paid for.
    pending_tier: str | None = Field(default=None, max_length=20)
    status: str = Field(max_length=30)
    current_period_end: datetime | None = Field(default=None, sa_column=ts())
    cancel_at_period_end: bool = Field(default=False, sa_column_kwargs=sd("false"))
    state_at: int = Field(
        default=0, sa_column=Column(BigInteger, nullable=False, server_default="0")
    )
    created_at: datetime | None = Field(default=None, sa_column=ts(nullable=False, now=True))


class UsageDaily(SQLModel, table=True):
    """Daily rollup of request logs (UTC days), so usage pages and charts over many days
    read a few rows per day instead of every logged call (see `domain.usage.daily`)."""

    __tablename__ = "usage_daily"
    __table_args__ = (
        Index(
            "uq_usage_daily_bucket",
            "org_id",
            "day",
            "api_key_id",
            "model",
            unique=True,
            postgresql_nulls_not_distinct=True,
        ),
    )

    id: uuid.UUID = Field(sa_column=pk_uuid())
    org_id: uuid.UUID = Field(sa_column=fk_uuid("orgs.id", ondelete="CASCADE", index=False))
    api_key_id: uuid.UUID | None = Field(default=None)
    model: str = Field(max_length=200)
    day: datetime = Field(sa_column=ts(nullable=False))
    requests: int = Field(default=0, sa_column_kwargs=sd("0"))
    failed_requests: int = Field(default=0, sa_column_kwargs=sd("0"))
    prompt_tokens: int = Field(default=0, sa_column=micros())
    completion_tokens: int = Field(default=0, sa_column=micros())
    cost_micros: int = Field(default=0, sa_column=micros())
    byok_requests: int = Field(default=0, sa_column_kwargs=sd("0"))
    updated_at: datetime | None = Field(default=None, sa_column=ts(nullable=False, now=True))
