"""Short `oxinf` commands that open a Temporal client exit cleanly under CPU load.

temporalio's native client used to abort the interpreter at exit about one run in four when
the CPU was busy (sdk-python #300), turning a finished command into a crash."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from config.runtime import Resources
from worker import ensure_schedules

ROOT = Path(__file__).resolve().parents[1]
RUNS = 30
AT_ONCE = 3
SPIN = "import time\nend = time.monotonic() + 600\nwhile time.monotonic() < end: pass\n"


async def test_schedules_list_exits_zero_thirty_times_on_a_busy_cpu(
    dev_server_env: WorkflowEnvironment, resources: Resources, tmp_path: Path
) -> None:
    await ensure_schedules(dev_server_env.client, resources.settings)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OXINF_")} | {
        "OXINF_ENV": "test",
        "OXINF_DATA_DIR": str(tmp_path),
        "OXINF_TEMPORAL_ADDRESS": dev_server_env.client.service_client.config.target_host,
        "OXINF_LOG_LEVEL": "WARNING",
    }
    oxinf = str(Path(sys.executable).parent / "oxinf")
    spinners = [
        await asyncio.create_subprocess_exec(sys.executable, "-c", SPIN)
        for _ in range(os.cpu_count() or 2)
    ]
    results: list[tuple[int, bytes]] = []
    gate = asyncio.Semaphore(AT_ONCE)

    async def once() -> None:
        async with gate:
            proc = await asyncio.create_subprocess_exec(
                oxinf, "schedules", "list", env=env, cwd=ROOT,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
            out, _ = await proc.communicate()
            results.append((proc.returncode or 0, out))

    try:
        await asyncio.gather(*(once() for _ in range(RUNS)))
    finally:
        for spinner in spinners:
            spinner.kill()
            await spinner.wait()
    failed = [out.decode(errors="replace") for code, out in results if code != 0]
    assert failed == [], f"{len(failed)} of {RUNS} runs failed; first:\n{failed[0]}"
    assert all(b"hold-sweeper" in out for _, out in results)
