"""channel capabilities

Channels gain `capabilities`, a JSON list of what an upstream speaks beyond chat, so the relay
can send it the client's own body: `responses_api` means the channel's base URL answers
OpenAI's `POST /responses` (provider `openai` always does; other OpenAI-compatible channels
only when an operator says so).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04 10:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "channels",
        sa.Column(
            "capabilities",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
    )


def downgrade() -> None:
    op.drop_column("channels", "capabilities")
