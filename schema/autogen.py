"""`python -m schema.autogen "message"`: write the next migration from the table modules.

It diffs the tables against a scratch database migrated to head (embedded pgserver, or
`OXINF_DATABASE_URL`'s server), so nobody hand-writes DDL the models already state.
"""

from __future__ import annotations

import asyncio
import secrets
import sys

import asyncpg
from alembic import command
from sqlalchemy import Connection
from sqlalchemy.engine import make_url

from config.runtime import resolve_database_url
from config.settings import get_settings
from schema.db import create_engine, to_async_url
from schema.migrate import alembic_config, upgrade


async def main(message: str) -> None:
    server = make_url(to_async_url(resolve_database_url(get_settings())))
    plain = server.set(drivername="postgresql").render_as_string(False)
    name = "oxinf_autogen_" + secrets.token_hex(3)
    conn = await asyncpg.connect(plain)
    await conn.execute(f'CREATE DATABASE "{name}"')
    engine = create_engine(server.set(database=name).render_as_string(False), pool_size=1)
    try:
        await upgrade(engine)

        def revise(sync_conn: Connection) -> None:
            cfg = alembic_config()
            cfg.attributes["connection"] = sync_conn
            command.revision(cfg, message=message, autogenerate=True)

        async with engine.begin() as aconn:
            await aconn.run_sync(revise)
    finally:
        await engine.dispose()
        await conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await conn.close()


if __name__ == "__main__":
    asyncio.run(main(" ".join(sys.argv[1:]) or "change"))
