"""`oxinf dev` restarts whichever part crashes, with back-off, and stops only on Ctrl-C."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.fixtures.processes import DevStack, http_get, scratch_dir


def _chat(stack: DevStack, key: str) -> httpx.Response:
    return httpx.post(
        f"{stack.api_url}/v1/chat/completions",
        json={"model": "demo-chat", "messages": [{"role": "user", "content": "still there?"}]},
        headers={"authorization": f"Bearer {key}"},
        timeout=10,
    )


def _eventually_ok(stack: DevStack, key: str, timeout: float = 60) -> float:
    """Seconds until a demo chat call succeeds again."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if _chat(stack, key).status_code == 200:
                return time.monotonic() - started
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError("calls did not succeed again:\n" + stack.output)


def _restarted(stack: DevStack, name: str, after: int) -> str:
    """Wait for the supervisor to report the crash and the restart; the crash line."""
    crash = stack.wait_line(
        lambda line: (
            line.startswith(f"oxinf: {name} ")
            and "restarting in" in line
            and stack.lines.index(line) >= after
        ),
        timeout=30,
    )
    stack.wait_line(
        lambda line: (
            line.strip() == f"oxinf: {name} restarted" and stack.lines.index(line) >= after
        ),
        timeout=60,
    )
    return crash


@pytest.mark.timeout_sensitive
def test_supervisor_restarts_each_crashed_part() -> None:
    with scratch_dir("oxinf-dev-") as root:
        _restarts_each_crashed_part(root)


def _restarts_each_crashed_part(tmp_path: Path) -> None:
    stack = DevStack(tmp_path / "data")
    stack.start()
    try:
        stack.wait_banner()
        key = stack.demo_key()
        assert _chat(stack, key).status_code == 200

        # The worker: killed, reported with its exit status, started again; the API stays up.
        worker = stack.child("cli worker")
        mark = len(stack.lines)
        worker.send_signal(signal.SIGKILL)
        crash = _restarted(stack, "worker", mark)
        assert re.fullmatch(r"oxinf: worker exited with -9; restarting in 1s\n", crash), crash
        assert stack.proc is not None and stack.proc.poll() is None
        assert stack.child("cli worker").pid != worker.pid
        assert _chat(stack, key).status_code == 200

        # The API: calls succeed again once its replacement listens.
        api = stack.child("cli api")
        mark = len(stack.lines)
        api.send_signal(signal.SIGKILL)
        _restarted(stack, "api", mark)
        _eventually_ok(stack, key)

        # Temporal: the worker and the API reconnect to the new server by themselves.
        temporal = stack.child("server start-dev")
        mark = len(stack.lines)
        temporal.send_signal(signal.SIGKILL)
        _restarted(stack, "temporal", mark)

        # PostgreSQL (postmaster and backends): the pools reconnect once it is back.
        pg_pid = int((tmp_path / "data" / "pg" / "postmaster.pid").read_text().split()[0])
        postmaster = psutil.Process(pg_pid)
        victims = [postmaster, *postmaster.children(recursive=True)]
        mark = len(stack.lines)
        for proc in victims:
            proc.kill()
        psutil.wait_procs(victims, timeout=10)
        _restarted(stack, "postgres", mark)
        _eventually_ok(stack, key)

        ready = http_get(f"{stack.api_url}/readyz")
        deadline = time.monotonic() + 30
        while (ready is None or ready.status_code != 200) and time.monotonic() < deadline:
            time.sleep(0.2)
            ready = http_get(f"{stack.api_url}/readyz")
        assert ready is not None and ready.status_code == 200, stack.output
        assert ready.json()["checks"] == {"postgres": "ok", "temporal": "ok"}

        # Nothing of this stopped the stack; Ctrl-C does, and leaves nothing behind.
        assert "stopping" not in stack.output
        out, alive = stack.stop()
        assert not alive, f"orphans left behind: {alive}"
        assert "oxinf: stopped" in out
    finally:
        stack.kill()
