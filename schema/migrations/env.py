"""Alembic environment: always handed a live connection by `schema.migrate`.

Running through a caller's connection (instead of alembic opening its own engine) lets the
API, the worker, the CLI and the tests migrate inside their own event loop.
"""

from __future__ import annotations

from alembic import context

import schema.tables  # noqa: F401  (registers every table on the metadata)
from schema.base import metadata

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `oxinf migrate`, which supplies the connection")

context.configure(
    connection=connection,
    target_metadata=metadata,
    compare_type=True,
    transaction_per_migration=False,
)
with context.begin_transaction():
    context.run_migrations()
