"""Apply and check Alembic migrations on a live async engine.

Startup refuses to serve on a database behind the code's head revision: serving against a
missing column fails later, mid-request and possibly mid-charge.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Serialises concurrent `migrate` runs from several replicas starting at once.
_MIGRATION_LOCK_ID = 0x0F1F_0001


class DatabaseNotMigrated(RuntimeError):
    """The database schema is not at the revision this code expects."""


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _upgrade(sync_conn: Connection, target: str) -> None:
    sync_conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
    cfg = alembic_config()
    cfg.attributes["connection"] = sync_conn
    command.upgrade(cfg, target)


def _current(sync_conn: Connection) -> str | None:
    return MigrationContext.configure(sync_conn).get_current_revision()


async def upgrade(engine: AsyncEngine, target: str = "head") -> None:
    """`target` is for tests of a data migration; everything else goes to head."""
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade, target)


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(_current)


async def ensure_migrated(engine: AsyncEngine) -> None:
    current, head = await current_revision(engine), head_revision()
    if current != head:
        raise DatabaseNotMigrated(
            f"database is at revision {current or 'none'} but this code needs {head}: "
            "run `oxinf migrate` (or `make migrate`) first"
        )
