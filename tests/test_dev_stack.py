"""`oxinf dev` brings the whole embedded stack up, and Ctrl-C leaves no process behind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.conditions import eventually_blocking
from tests.fixtures.processes import DevStack, scratch_dir


@pytest.mark.timeout_sensitive
def test_dev_stack_starts_stops_cleanly_and_reuses_data() -> None:
    with scratch_dir("oxinf-dev-") as root:
        _starts_stops_cleanly_and_reuses_data(root / "data")


def _starts_stops_cleanly_and_reuses_data(data_dir: Path) -> None:
    stack = DevStack(data_dir)
    ports = stack.ports
    stack.start()
    try:
        banner = stack.wait_banner()
        ready = httpx.get(f"{stack.api_url}/readyz", timeout=5)
        assert ready.status_code == 200
        assert ready.json()["checks"] == {"postgres": "ok", "temporal": "ok"}
        assert stack.api_url in banner
        assert f"Temporal UI:  http://127.0.0.1:{ports['ui']}" in banner
        assert "Admin login:  admin@oxinf.local / " in banner
        demo_key = stack.demo_key()
        chat = httpx.post(
            f"{stack.api_url}/v1/chat/completions",
            json={"model": "demo-chat", "messages": [{"role": "user", "content": "hi there"}]},
            headers={"authorization": f"Bearer {demo_key}"},
            timeout=10,
        )
        assert chat.status_code == 200, chat.text
        assert chat.json()["choices"][0]["message"]["content"].startswith("Hello from 0xinf demo")
        assert chat.headers["x-oxinf-billing"] == "platform"
        task = httpx.post(
            f"{stack.api_url}/v1/tasks",
            json={"type": "image", "model": "demo-image", "input": {"prompt": "a lighthouse"}},
            headers={"authorization": f"Bearer {demo_key}"},
            timeout=10,
        )
        assert task.status_code == 202, task.text

        def finished() -> dict[str, Any] | None:
            state: dict[str, Any] = httpx.get(
                f"{stack.api_url}/v1/tasks/{task.json()['id']}",
                headers={"authorization": f"Bearer {demo_key}"},
                timeout=10,
            ).json()
            return None if state["status"] in ("pending", "processing") else state

        # The worker process runs the task's workflow on the dev server.
        state = eventually_blocking(finished, within=30, what="the demo task finished")
        assert state["status"] == "succeeded", state
        assert state["credits_charged"] == "20"
        # A real picture at the API's own URL (the worker stored it, the API serves it).
        (url,) = state["result"]["urls"]
        assert url.startswith(f"{stack.api_url}/v1/files/")
        image = httpx.get(url, timeout=10)
        assert image.status_code == 200 and image.content.startswith(b"\x89PNG\r\n\x1a\n")
        assert (data_dir / "blobs" / "tasks" / task.json()["id"] / "0").exists()
        _, alive = stack.stop()
        assert not alive, f"orphans left behind: {alive}"
        assert (data_dir / "pg" / "PG_VERSION").exists()
        assert (data_dir / "temporal.db").exists()
        secrets_before = (data_dir / "secrets.json").read_text()

        stack.start()
        stack.wait_banner()
        assert stack.demo_key() == demo_key  # the same key, kept across runs
        _, alive = stack.stop()
        assert not alive
        assert (data_dir / "secrets.json").read_text() == secrets_before
    finally:
        stack.kill()
