"""Telling "a dependency is down" apart from a bug, in one place.

When PostgreSQL or Temporal cannot be reached, a request failed through no fault of the
caller or of our code, and the honest answer is 503 `service_unavailable` with `Retry-After`
(clients and SDKs retry it), not a 500. The error handler, the edge middleware's safety net,
the fast chat route and streams all ask `dependency_down` which answer an exception deserves.

Drivers report an outage in many shapes: a refused connect surfaces as a bare
`ConnectionRefusedError` from inside asyncpg, a connection lost mid-transaction as
SQLAlchemy's `DBAPIError` around asyncpg's `ConnectionDoesNotExistError`, an admin shutdown
as `AdminShutdownError`, a pool wait past its bound as `TimeoutError`, and Temporal as an
`RPCError` with status UNAVAILABLE or a failed connect. Errors are attributed by type where
the type says it, and by where they were raised (the driver's own frames in the traceback)
where it does not: a bare `OSError` raised by asyncpg is PostgreSQL's, one raised elsewhere is
left alone, so a bug never hides behind a 503.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import TracebackType
from typing import Literal

import asyncpg
from sqlalchemy import exc as sa_exc
from temporalio.client import RPCTimeoutOrCancelledError
from temporalio.service import RPCError, RPCStatusCode

from domain.errors import ServiceUnavailable

Dependency = Literal["postgres", "temporal"]

RETRY_AFTER_S = 2
_MESSAGES: dict[str, str] = {
    "postgres": "the service is temporarily unavailable (database); retry shortly",
    "temporal": "the service is temporarily unavailable (workflow engine); retry shortly",
}

# asyncpg's errors that mean the server or the connection is gone, not that a statement was
# wrong: connection exceptions (class 08), operator intervention (57P01-57P03: admin or crash
# shutdown, "cannot connect now" while starting), and too many connections (53300).
_PG_DOWN: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
    # The connection's protocol is out of step with the server: a dying backend sent its
    # last words ("terminating connection…") to a connection that was idle in a pool.
    asyncpg.exceptions.InternalClientError,
)
# asyncpg's client-side messages for a connection or pool that is gone.
_PG_GONE_MESSAGES = ("connection is closed", "connection was closed", "pool is closing",
                     "pool is closed", "the underlying connection is closed")  # fmt: skip
_TEMPORAL_DOWN = {
    RPCStatusCode.UNAVAILABLE,
    RPCStatusCode.DEADLINE_EXCEEDED,
    RPCStatusCode.RESOURCE_EXHAUSTED,
}
_DRIVER_PACKAGES: dict[str, Dependency] = {
    "asyncpg": "postgres",
    "sqlalchemy": "postgres",
    "schema": "postgres",  # our own database access (e.g. `schema.direct`'s bounded waits)
    "temporalio": "temporal",
}
# Exception types an outage can surface as: the error handler registers for these.
OUTAGE_TYPES: tuple[type[Exception], ...] = (
    sa_exc.SQLAlchemyError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    OSError,  # includes ConnectionRefusedError and TimeoutError
    RPCError,
    RPCTimeoutOrCancelledError,
    RuntimeError,  # temporalio's "Failed client connect"
)


class DependencyUnavailable(ServiceUnavailable):
    """PostgreSQL or Temporal cannot be reached: 503 with `Retry-After`."""

    def __init__(self, dependency: Dependency, message: str | None = None) -> None:
        super().__init__(
            message or _MESSAGES[dependency], headers={"Retry-After": str(RETRY_AFTER_S)}
        )
        self.dependency: Dependency = dependency


def dependency_down(exc: BaseException) -> Dependency | None:
    """Which dependency `exc` says is unreachable, or None when it says something else."""
    for err in _chain(exc):
        found = _classify_one(err)
        if found is not None:
            return found
    return None


def as_unavailable(exc: BaseException) -> DependencyUnavailable | None:
    """The 503 to answer with, or None when `exc` is not an outage."""
    if isinstance(exc, DependencyUnavailable):
        return exc
    dependency = dependency_down(exc)
    return None if dependency is None else DependencyUnavailable(dependency)


def _classify_one(err: BaseException) -> Dependency | None:
    if isinstance(err, DependencyUnavailable):
        return err.dependency
    if isinstance(err, sa_exc.TimeoutError):  # the pool wait ran past its bound
        return "postgres"
    if isinstance(err, sa_exc.DBAPIError) and err.connection_invalidated:
        return "postgres"
    if isinstance(err, _PG_DOWN):
        return "postgres"
    if isinstance(err, asyncpg.InterfaceError) and any(m in str(err) for m in _PG_GONE_MESSAGES):
        return "postgres"
    if isinstance(err, RPCError):
        return "temporal" if err.status in _TEMPORAL_DOWN else None
    if isinstance(err, RPCTimeoutOrCancelledError):  # the server did not answer in time
        return "temporal"
    if isinstance(err, RuntimeError) and str(err).startswith("Failed client connect"):
        return "temporal"
    if isinstance(err, (ConnectionError, TimeoutError)) or _is_socket_error(err):
        return _raised_by_driver(err.__traceback__)
    return None


def _is_socket_error(err: BaseException) -> bool:
    """`OSError`s a connect attempt produces besides `ConnectionError` (a unix socket that
    is gone, an unreachable host or name)."""
    return type(err) in (OSError, FileNotFoundError) or err.__class__.__module__ == "socket"


def _raised_by_driver(tb: TracebackType | None) -> Dependency | None:
    """The dependency whose driver raised it: the innermost driver frame decides."""
    found: Dependency | None = None
    while tb is not None:
        module = str(tb.tb_frame.f_globals.get("__name__", ""))
        package = module.partition(".")[0]
        if package in _DRIVER_PACKAGES:
            found = _DRIVER_PACKAGES[package]
        tb = tb.tb_next
    return found


def _chain(exc: BaseException, limit: int = 8) -> Iterator[BaseException]:
    """The exception, then what it wraps (SQLAlchemy's `orig`, causes, contexts)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < limit:
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)
        if isinstance(orig, BaseException) and id(orig) not in seen:
            yield from _chain(orig, limit - len(seen))
        if current.__cause__ is not None:
            current = current.__cause__
        elif current.__suppress_context__:  # `raise ... from None`: the past is not the cause
            return
        else:
            current = current.__context__


__all__ = [
    "OUTAGE_TYPES",
    "RETRY_AFTER_S",
    "Dependency",
    "DependencyUnavailable",
    "as_unavailable",
    "dependency_down",
]
