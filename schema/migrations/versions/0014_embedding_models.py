"""embedding models

The catalog gains model type `embedding` (`POST /v1/embeddings`, priced per input token);
only the check constraint on `models.type` changes. Downgrading fails while embedding models
exist, rather than deleting them.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04 09:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_constraint(op.f("ck_models_type"), "models", type_="check")
    op.create_check_constraint(
        op.f("ck_models_type"), "models", "type IN ('chat', 'image', 'video', 'audio', 'embedding')"
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_models_type"), "models", type_="check")
    op.create_check_constraint(
        op.f("ck_models_type"), "models", "type IN ('chat', 'image', 'video', 'audio')"
    )
