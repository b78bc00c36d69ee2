"""`oxinf dev` brings the whole embedded stack up, and Ctrl-C leaves no process behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.fixtures.conditions import eventually_blocking


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(data_dir: Path, ports: dict[str, int]) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OXINF_")} | {
        "OXINF_DATA_DIR": str(data_dir),
        "OXINF_API_PORT": str(ports["api"]),
        "OXINF_TEMPORAL_PORT": str(ports["temporal"]),
        "OXINF_TEMPORAL_UI_PORT": str(ports["ui"]),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "cli", "dev"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )


def _wait_banner(proc: subprocess.Popen[str], timeout: float = 90) -> str:
    """Read the supervisor's output until it says it is up (it prints that after /readyz)."""
    assert proc.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError("oxinf dev exited early:\n" + "".join(seen))
        seen.append(line)
        if line.startswith("Press Ctrl-C"):
            return "".join(seen)
    raise AssertionError("stack did not come up:\n" + "".join(seen))


def _demo_key(banner: str) -> str:
    keys = [line for line in banner.splitlines() if line.startswith("oxi_")]
    assert len(keys) == 1, banner
    return keys[0]


def _stop(proc: subprocess.Popen[str]) -> tuple[str, list[psutil.Process]]:
    children = psutil.Process(proc.pid).children(recursive=True)
    assert len(children) >= 3, "expected temporal, worker and api children"
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=40)
    assert proc.returncode == 0, out
    _gone, alive = psutil.wait_procs(children, timeout=10)
    return out, alive


@pytest.mark.timeout_sensitive
def test_dev_stack_starts_stops_cleanly_and_reuses_data(tmp_path: Path) -> None:
    ports = {"api": _free_port(), "temporal": _free_port(), "ui": _free_port()}
    data_dir = tmp_path / "data"

    proc = _start(data_dir, ports)
    banner = _wait_banner(proc)
    ready = httpx.get(f"http://127.0.0.1:{ports['api']}/readyz", timeout=5)
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"postgres": "ok", "temporal": "ok"}
    assert f"http://127.0.0.1:{ports['api']}" in banner
    assert f"Temporal UI:  http://127.0.0.1:{ports['ui']}" in banner
    assert "Admin login:  admin@oxinf.local / " in banner
    demo_key = _demo_key(banner)
    chat = httpx.post(
        f"http://127.0.0.1:{ports['api']}/v1/chat/completions",
        json={"model": "demo-chat", "messages": [{"role": "user", "content": "hi there"}]},
        headers={"authorization": f"Bearer {demo_key}"},
        timeout=10,
    )
    assert chat.status_code == 200, chat.text
    assert chat.json()["choices"][0]["message"]["content"].startswith("Hello from 0xinf demo")
    assert chat.headers["x-oxinf-billing"] == "platform"
    task = httpx.post(
        f"http://127.0.0.1:{ports['api']}/v1/tasks",
        json={"type": "image", "model": "demo-image", "input": {"prompt": "a lighthouse"}},
        headers={"authorization": f"Bearer {demo_key}"},
        timeout=10,
    )
    assert task.status_code == 202, task.text

    def finished() -> dict[str, Any] | None:
        state: dict[str, Any] = httpx.get(
            f"http://127.0.0.1:{ports['api']}/v1/tasks/{task.json()['id']}",
            headers={"authorization": f"Bearer {demo_key}"},
            timeout=10,
        ).json()
        return None if state["status"] in ("pending", "processing") else state

    # The worker process runs the task's workflow on the dev server.
    state = eventually_blocking(finished, within=30, what="the demo task finished")
    assert state["status"] == "succeeded", state
    assert state["credits_charged"] == "20"
    _, alive = _stop(proc)
    assert not alive, f"orphans left behind: {alive}"
    assert (data_dir / "pg" / "PG_VERSION").exists()
    assert (data_dir / "temporal.db").exists()
    secrets_before = (data_dir / "secrets.json").read_text()

    proc = _start(data_dir, ports)
    assert _demo_key(_wait_banner(proc)) == demo_key  # the same key, kept across runs
    _, alive = _stop(proc)
    assert not alive
    assert (data_dir / "secrets.json").read_text() == secrets_before
