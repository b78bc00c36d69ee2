"""callback attempts unique per task, event and attempt

A callback attempt is recorded once: a delivery activity that ran twice for the same
attempt (a worker presumed dead that was not) now finds the row taken and records
nothing. Rows such a double run left behind are removed first, keeping for each
(task, event, attempt) the delivered one if any, else the earliest. Downgrading drops the
constraint; the removed duplicates do not come back.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 06:16:43.634816
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        sa.text(
            """
            DELETE FROM callback_attempts AS a
            USING (
                SELECT id, row_number() OVER (
                    PARTITION BY task_id, event, attempt
                    ORDER BY (outcome = 'delivered') DESC, id
                ) AS n
                FROM callback_attempts
            ) AS ranked
            WHERE a.id = ranked.id AND ranked.n > 1
            """
        )
    )
    op.create_unique_constraint(
        op.f("uq_callback_attempts_task_id"), "callback_attempts", ["task_id", "event", "attempt"]
    )


def downgrade() -> None:
    op.drop_constraint(op.f("uq_callback_attempts_task_id"), "callback_attempts", type_="unique")
