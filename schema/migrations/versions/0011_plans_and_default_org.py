"""default org per user

`users.default_org_id`: the org a portal session acts in when it names none (`make dev`
sets the bootstrap admin's to the demo org); unset keeps the personal org first. Downgrading
drops the column.

Revision ID: 0011
Revises: 0009
Create Date: 2026-12-04 08:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


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


def downgrade() -> None:
    op.drop_constraint(op.f("fk_users_default_org_id_orgs"), "users", type_="foreignkey")
    op.drop_column("users", "default_org_id")
