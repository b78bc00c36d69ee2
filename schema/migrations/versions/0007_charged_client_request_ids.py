"""charged client request ids

One complete, charged answer at most per org and `X-Client-Request-ID`, so a client that
retries a call with the same id (after a timeout, a dropped connection or an API crash) is
never charged twice. Only charged, complete answers count: failed calls, partial streams and
free (BYOK) calls can be retried under the same id.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 06:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "uq_request_logs_org_client_request_charged"
WHERE = "client_request_id IS NOT NULL AND status = 'succeeded' AND cost_micros > 0"


def upgrade() -> None:
    op.create_index(
        INDEX,
        "request_logs",
        ["org_id", "client_request_id"],
        unique=True,
        postgresql_where=sa.text(WHERE),
    )


def downgrade() -> None:
    op.drop_index(INDEX, table_name="request_logs")
