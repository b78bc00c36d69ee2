"""Single-statement autocommit writes on the relay's hot path, straight on asyncpg.

Through SQLAlchemy's async engine one statement costs about 340 us of CPU (connection
checkout, the greenlet bridge, result wrapping); on an asyncpg pool about 130 us. The relay
runs two such statements per call (the rate-limit hit with the reserve, and the settle with
its log, shared with concurrent calls), each one atomic on its own, so they gain nothing
from a Session or a transaction.

Statements are still written with SQLAlchemy Core (or `text()`), compiled once for the
asyncpg dialect, and run with the same bind processors SQLAlchemy would apply, so the SQL
and its types stay in one place. The pool is small, made lazily from the engine's own
connection arguments, and used for nothing else. Waits for a connection and connects are
bounded like the engine's (`schema.db.create_engine`); asyncpg replaces a connection the
server closed at its next acquire, so the pool recovers by itself after a database restart.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement

from schema.db import pool_timeout_of

DEFAULT_MAX_SIZE = 10


async def _keep_session(_: asyncpg.Connection) -> None:
    """Return a connection to the pool as it is.

    asyncpg's default reset runs `RESET ALL`, `UNLISTEN *`, `CLOSE ALL` and an advisory
    unlock on every release: one more round trip per statement. These connections only
    ever run single autocommit statements, which leave no session state behind (asyncpg
    still rolls back a transaction left open, before this runs).
    """


@dataclass(frozen=True)
class Compiled:
    """A statement's SQL with $n placeholders, its bind names in order and their converters."""

    sql: str
    names: tuple[str, ...]
    processors: tuple[Callable[[Any], Any] | None, ...]
    fixed: Mapping[str, Any]  # binds that carry their own value (literals such as `+ 1`)

    def args(self, params: Mapping[str, Any]) -> list[Any]:
        """Positional arguments; a missing name is a KeyError, never a silent NULL."""
        out = []
        for name, process in zip(self.names, self.processors, strict=True):
            value = params[name] if name in params or name not in self.fixed else self.fixed[name]
            # Processors also see None, as in SQLAlchemy (JSON turns it into JSON null).
            out.append(process(value) if process is not None else value)
        return out


def compile_statement(stmt: ClauseElement, engine: AsyncEngine) -> Compiled:
    dialect = engine.dialect
    compiled = stmt.compile(dialect=dialect)
    assert isinstance(compiled, SQLCompiler)
    names = tuple(compiled.positiontup or ())
    binds = [compiled.binds[name] for name in names]
    processors = tuple(b.type.dialect_impl(dialect).bind_processor(dialect) for b in binds)
    fixed = {n: b.effective_value for n, b in zip(names, binds, strict=True) if not b.required}
    return Compiled(str(compiled), names, processors, fixed)


def _statement_error(exc: BaseException) -> bool:
    """An error PostgreSQL reported for the statement itself (a unique violation, say): the
    server has finished with it and the connection is idle again."""
    return isinstance(exc, asyncpg.PostgresError) and not isinstance(
        exc, (asyncpg.PostgresConnectionError, asyncpg.exceptions.OperatorInterventionError)
    )


class DirectPool:
    """A lazily created asyncpg pool for autocommit statements (see the module docstring)."""

    def __init__(
        self, engine: AsyncEngine, *, max_size: int = DEFAULT_MAX_SIZE, durable: bool = True
    ) -> None:
        """`durable=False` commits without waiting for the WAL flush. Only for writes a
        database crash may roll back harmlessly: rate-limit windows, and the relay's
        reserve, which the settle's own flush makes durable (`domain.relay.repository`).
        Never for a write that moves money on its own."""
        self._engine = engine
        self._max_size = max_size
        # As long as the engine's own pool waits: an outage answers in bounded time.
        self._timeout = pool_timeout_of(engine)
        self._settings = {"application_name": "oxinf"}
        if not durable:
            self._settings["synchronous_commit"] = "off"
        self._pool: asyncpg.Pool | None = None
        self._busy = 0  # connections acquired (or being acquired) from `_pool`
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock: asyncio.Lock | None = None
        self._compiled: dict[int, tuple[ClauseElement, Compiled]] = {}

    def compiled(self, stmt: ClauseElement) -> Compiled:
        """Compile once per statement object (callers keep their statements as constants)."""
        found = self._compiled.get(id(stmt))
        if found is None or found[0] is not stmt:
            found = (stmt, compile_statement(stmt, self._engine))
            self._compiled[id(stmt)] = found
        return found[1]

    async def _get(self) -> asyncpg.Pool:
        loop = asyncio.get_running_loop()
        if self._pool is not None and self._loop is loop:
            return self._pool
        if self._lock is None or self._loop is not loop:
            self._lock, self._loop, self._pool = asyncio.Lock(), loop, None
        async with self._lock:
            if self._pool is None:
                self._busy = 0
                _, kwargs = self._engine.dialect.create_connect_args(self._engine.url)
                kwargs["server_settings"] = dict(self._settings)
                kwargs["timeout"] = self._timeout
                self._pool = await asyncpg.create_pool(
                    min_size=0, max_size=self._max_size, reset=_keep_session, **kwargs
                )
            return self._pool

    async def _acquire(self) -> tuple[asyncpg.Pool, asyncpg.Connection]:
        """A connection, waiting at most the engine's timeout when every one is in use.

        Only this object uses its pool, so it counts the connections out itself: while one
        is free an acquire cannot queue (a connect is bounded by the connect timeout), and
        the timer that bounds a wait, a few microseconds, is paid only when one can happen.
        """
        pool = await self._get()
        self._busy += 1
        try:
            if self._busy <= self._max_size:
                conn = await pool.acquire()
            else:
                async with asyncio.timeout(self._timeout):
                    conn = await pool.acquire()
        except BaseException:
            self._busy -= 1
            raise
        return pool, conn

    async def _release(
        self, pool: asyncpg.Pool, conn: asyncpg.Connection, error: BaseException | None
    ) -> None:
        """Back to the pool, unless `error` may have left it half-way through the protocol:
        connections here skip asyncpg's reset, so a broken one is closed, not reused."""
        try:
            if error is not None and not _statement_error(error):
                conn.terminate()
            await pool.release(conn)
        finally:
            self._busy -= 1

    async def fetchrow(
        self, stmt: ClauseElement, params: Mapping[str, Any]
    ) -> asyncpg.Record | None:
        compiled = self.compiled(stmt)
        args = compiled.args(params)
        pool, conn = await self._acquire()
        error: BaseException | None = None
        try:
            row: asyncpg.Record | None = await conn.fetchrow(compiled.sql, *args)
            return row
        except Exception as exc:
            error = exc
            raise
        finally:
            await self._release(pool, conn, error)

    async def fetch(self, stmt: ClauseElement, params: Mapping[str, Any]) -> list[asyncpg.Record]:
        compiled = self.compiled(stmt)
        args = compiled.args(params)
        pool, conn = await self._acquire()
        error: BaseException | None = None
        try:
            rows: list[asyncpg.Record] = await conn.fetch(compiled.sql, *args)
            return rows
        except Exception as exc:
            error = exc
            raise
        finally:
            await self._release(pool, conn, error)

    async def fetch_together(
        self, statements: Sequence[tuple[ClauseElement, Mapping[str, Any]]]
    ) -> list[list[asyncpg.Record]]:
        """Several statements in one transaction (one alone needs none): all or nothing."""
        if len(statements) == 1:
            return [await self.fetch(*statements[0])]
        prepared = [(self.compiled(stmt), params) for stmt, params in statements]
        pool, conn = await self._acquire()
        error: BaseException | None = None
        try:
            async with conn.transaction():
                return [await conn.fetch(c.sql, *c.args(params)) for c, params in prepared]
        except Exception as exc:
            error = exc
            raise
        finally:
            await self._release(pool, conn, error)

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None and self._loop is asyncio.get_running_loop():
            await pool.close()
