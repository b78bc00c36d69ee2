"""plans as subscriptions, default org per user

`org_subscriptions`: an org's plan as a Stripe subscription (tier, status, period end, a
downgrade waiting for the period's end, and the Stripe time of the state it holds so late
events never overwrite newer ones). `users.default_org_id`: the org a portal session acts in
when it names none (`make dev` sets the bootstrap admin's to the demo org); unset keeps the
personal org first. Downgrading drops both; tiers already set on orgs stay.

Revision ID: 0011
Revises: 0009
Create Date: 2026-12-04 08:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUSES = (
    "'incomplete', 'incomplete_expired', 'trialing', 'active', 'past_due', 'unpaid', "
    "'canceled', 'paused'"
)


def upgrade() -> None:
    op.add_column("users", sa.Column("default_org_id", sa.UUID(), nullable=True))
    op.create_foreign_key(
        op.f("fk_users_default_org_id_orgs"),
        "users",
        "orgs",
        ["default_org_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.create_table(
        "org_subscriptions",
        sa.Column("org_id", sa.UUID(), nullable=False),
        sa.Column(
            "stripe_subscription_id", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False
        ),
        sa.Column(
            "stripe_customer_id", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True
        ),
        sa.Column("tier", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("pending_tier", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
        sa.Column("current_period_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "cancel_at_period_end", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        sa.Column("state_at", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(f"status IN ({STATUSES})", name=op.f("ck_org_subscriptions_status")),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["orgs.id"],
            name=op.f("fk_org_subscriptions_org_id_orgs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("org_id", name=op.f("pk_org_subscriptions")),
    )
    op.create_index(
        "uq_org_subscriptions_subscription",
        "org_subscriptions",
        ["stripe_subscription_id"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("uq_org_subscriptions_subscription", table_name="org_subscriptions")
    op.drop_table("org_subscriptions")
    op.drop_constraint(op.f("fk_users_default_org_id_orgs"), "users", type_="foreignkey")
    op.drop_column("users", "default_org_id")
