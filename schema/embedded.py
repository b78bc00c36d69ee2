"""The embedded PostgreSQL (pgserver) used when no `OXINF_DATABASE_URL` is given.

A pip wheel ships the server, so `make dev` and `make test` need nothing but Python. The
server listens on a unix socket only, inside the data dir, and stops when the last process
holding it exits. `oxinf dev` watches it and starts it again if it dies
(`embedded_postgres_alive`, `restart_embedded_postgres`).
"""

from __future__ import annotations

import contextlib
import logging
import re
import warnings
from pathlib import Path
from typing import Any

log = logging.getLogger("oxinf.embedded")


def start_embedded_postgres(pgdata: Path, database: str = "oxinf") -> tuple[Any, str]:
    """Start (or attach to) the server in `pgdata` and return it with a URL for `database`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

        pgdata.mkdir(parents=True, exist_ok=True)
        server = pgserver.get_server(pgdata.resolve(), cleanup_mode="stop")  # type: ignore[attr-defined]
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", database):
        raise ValueError(f"unsafe database name {database!r}")
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")  # noqa: S608
    if "(1 row)" not in exists:
        server.psql(f'CREATE DATABASE "{database}";')
    return server, str(server.get_uri(database))


def stop_embedded_postgres(server: Any) -> None:
    server.cleanup()


def embedded_postgres_alive(server: Any) -> bool:
    """Whether the server's postmaster still runs (a zombie, killed and not yet reaped, is
    not running)."""
    import psutil

    try:
        process = server.get_postmaster_info().process
        return bool(
            process is not None
            and process.is_running()
            and process.status() != psutil.STATUS_ZOMBIE
        )
    except (AssertionError, psutil.Error):
        return False


def restart_embedded_postgres(server: Any) -> None:
    """Start the server in its data dir again after it died (crash recovery runs on start).

    Raises if it cannot start yet, e.g. while backends of the dead postmaster still hold its
    shared memory; the caller retries later."""
    lock = getattr(server, "_lock", None)  # pgserver's inter-process start lock
    with warnings.catch_warnings(), lock if lock is not None else contextlib.nullcontext():
        warnings.simplefilter("ignore")
        # Run as root, the server runs as its own user, which must still be able to reach
        # the data dir: re-grant that (something may have tightened a parent meanwhile).
        # The data itself is left alone: it exists, so this initializes nothing.
        server.ensure_pgdata_inited()
        server.ensure_postgres_running()
