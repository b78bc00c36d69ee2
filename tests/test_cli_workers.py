"""`oxinf api --workers N`: N uvicorn worker processes on one port, each logging our JSON."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from config.runtime import Resources
from tests.test_cli import ROOT, cli_env

START_TIMEOUT_S = 90


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def started_pids(log: Path) -> set[int]:
    """Worker pids from uvicorn's "Started server process [pid]" lines, which must be ours
    (JSON): uvicorn applies `--workers`' logging config in each process it spawns."""
    pids = set()
    for line in log.read_text(errors="replace").splitlines():
        if "Started server process" in line:
            record = json.loads(line)
            pids.add(int(record["msg"].rsplit("[", 1)[1].rstrip("]")))
    return pids


def children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rfind(")") + 2 :].split()[1]) == pid:
                found.add(int(entry.name))
    return found


@pytest.mark.timeout_sensitive
def test_api_workers_start_that_many_processes_on_one_port(
    resources: Resources, database_url: str, tmp_path: Path
) -> None:
    env = cli_env(resources, database_url, tmp_path) | {
        "OXINF_LOG_LEVEL": "INFO",
        "OXINF_LOG_JSON": "true",
        "OXINF_TEMPORAL_ADDRESS": "127.0.0.1:1",
    }
    port = free_port()
    log = tmp_path / "api.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli", "api", "--workers", "2", "--port", str(port)],
            env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline and proc.poll() is None:
            if healthy(port) and len(started_pids(log)) == 2:
                break
            time.sleep(0.2)
        assert proc.poll() is None, log.read_text()
        pids = started_pids(log)
        assert len(pids) == 2, log.read_text()
        assert pids <= children(proc.pid)
        assert healthy(port)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_workers_must_be_a_small_positive_number(tmp_path: Path) -> None:
    for bad in ("0", "-1", "two", "65"):
        done = subprocess.run(
            [sys.executable, "-m", "cli", "api", "--workers", bad],
            cwd=ROOT, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 2 and "--workers" in done.stderr, (bad, done.stderr)
