"""Engine and session factory: the one way any process talks to PostgreSQL."""

from __future__ import annotations

from typing import TypeAlias

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

SessionFactory = async_sessionmaker[AsyncSession]
# What Core-only repositories run on: an ORM session, or a bare connection on hot paths
# where the session's bookkeeping is pure overhead.
Executor: TypeAlias = AsyncSession | AsyncConnection


def to_async_url(url: str) -> str:
    """Accept the usual `postgres://` / `postgresql://` forms and select the asyncpg driver."""
    parsed = make_url(url.replace("postgres://", "postgresql://", 1))
    if parsed.drivername in ("postgresql", "postgresql+psycopg2", "postgresql+psycopg"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)


DEFAULT_TIMEOUT_S = 5.0


def create_engine(
    url: str, *, pool_size: int = 20, timeout_s: float = DEFAULT_TIMEOUT_S
) -> AsyncEngine:
    """`timeout_s` bounds both a wait for a free pooled connection and a new connect, so
    a database that is down or saturated answers "unavailable" in seconds instead of hanging.

    Connections that PostgreSQL dropped (a restart, a failover) are replaced by themselves:
    each checkout pings its connection first (one short round trip, paid only where a
    session is opened; the relay's hot statements run on `schema.direct`), and a
    disconnect seen mid-use invalidates the whole pool, so the next request gets a fresh one.
    """
    return create_async_engine(
        to_async_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_recycle=1800,
        pool_timeout=timeout_s,
        connect_args={"server_settings": {"application_name": "oxinf"}, "timeout": timeout_s},
    )


def pool_timeout_of(engine: AsyncEngine) -> float:
    """The engine's bound on waiting for a connection (`create_engine`'s `timeout_s`)."""
    timeout = getattr(engine.sync_engine.pool, "timeout", None)
    return float(timeout()) if callable(timeout) else DEFAULT_TIMEOUT_S


def session_factory(engine: AsyncEngine) -> SessionFactory:
    return async_sessionmaker(engine, expire_on_commit=False)


def engine_of(sessions: SessionFactory) -> AsyncEngine:
    """The engine behind a session factory, for hot paths that run Core on a connection."""
    engine = sessions.kw.get("bind")
    assert isinstance(engine, AsyncEngine), "session factory is not bound to an engine"
    return engine
