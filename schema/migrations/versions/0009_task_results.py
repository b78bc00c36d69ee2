"""task results

Results of succeeded media tasks are copied into the result store; one row per stored object
(`tasks/{task id}/{index}`), kept as `deleted` once retention removed the object, or `failed`
when the copy gave up. A new table only: tasks that succeeded before it keep their provider
URLs as they were; downgrading drops the table (the stored objects stay in the store).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 06:41:48.720442
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "task_results",
        sa.Column("task_id", sa.UUID(), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.UUID(), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("object_key", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
        sa.Column("content_type", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("error", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "state IN ('stored', 'failed', 'deleted')", name=op.f("ck_task_results_state")
        ),
        sa.CheckConstraint("idx >= 0", name=op.f("ck_task_results_idx")),
        sa.ForeignKeyConstraint(
            ["org_id"], ["orgs.id"], name=op.f("fk_task_results_org_id_orgs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["tasks.id"],
            name=op.f("fk_task_results_task_id_tasks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("task_id", "idx", name=op.f("pk_task_results")),
    )
    op.create_index(
        "ix_task_results_stored_at",
        "task_results",
        ["stored_at"],
        unique=False,
        postgresql_where=sa.text("state = 'stored'"),
    )
    op.create_index(
        "ix_task_results_failed",
        "task_results",
        ["created_at"],
        unique=False,
        postgresql_where=sa.text("state = 'failed'"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_task_results_failed",
        table_name="task_results",
        postgresql_where=sa.text("state = 'failed'"),
    )
    op.drop_index(
        "ix_task_results_stored_at",
        table_name="task_results",
        postgresql_where=sa.text("state = 'stored'"),
    )
    op.drop_table("task_results")
