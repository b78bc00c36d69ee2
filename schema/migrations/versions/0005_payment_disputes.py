"""payment disputes

Per-dispute bookkeeping on payments (what each Stripe dispute took, left uncollected and
how it closed), so a dispute the merchant wins gives back exactly what it took, in any
event order. Existing rows start with no disputes recorded.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 08:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "payments",
        sa.Column(
            "disputes",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
    )


def downgrade() -> None:
    op.drop_column("payments", "disputes")
