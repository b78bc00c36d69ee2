"""`oxinf dev` brings the whole embedded stack up, and Ctrl-C leaves no process behind."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import openai
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
        _admin_signs_into_demo_org_and_password_is_not_printed(stack.api_url, data_dir, banner)
        _newcomer_first_call_succeeds_on_the_signup_grant(stack.api_url)
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


def _admin_signs_into_demo_org_and_password_is_not_printed(
    api: str, data_dir: Path, banner: str
) -> None:
    password = json.loads((data_dir / "secrets.json").read_text())["admin_password"]
    assert password not in banner
    assert str(data_dir / "secrets.json") in banner
    login = httpx.post(
        f"{api}/portal/v1/auth/login",
        json={"email": "admin@oxinf.local", "password": password},
        timeout=10,
    )
    assert login.status_code == 200, login.text
    me = httpx.get(
        f"{api}/portal/v1/me",
        headers={"authorization": f"Bearer {login.json()['token']}"},
        timeout=10,
    ).json()
    assert me["orgs"][0]["name"] == "Demo", me


def _newcomer_first_call_succeeds_on_the_signup_grant(api: str) -> None:
    """Fresh sign-up, a key, and a first call with the official SDK: no Stripe, no admin."""
    creds = {"email": "newcomer@example.com", "password": "correct-horse-battery-9"}
    assert httpx.post(f"{api}/portal/v1/auth/signup", json=creds, timeout=10).status_code == 201
    token = httpx.post(f"{api}/portal/v1/auth/login", json=creds, timeout=10).json()["token"]
    auth = {"authorization": f"Bearer {token}"}
    made = httpx.post(f"{api}/portal/v1/api-keys", json={"name": "first"}, headers=auth, timeout=10)
    assert made.status_code == 201, made.text
    client = openai.OpenAI(base_url=f"{api}/v1", api_key=made.json()["key"], max_retries=0)
    answer = client.chat.completions.create(
        model="demo-chat", messages=[{"role": "user", "content": "hello"}]
    )
    assert answer.choices[0].message.content
    entries = httpx.get(f"{api}/portal/v1/credits/transactions", headers=auth, timeout=10).json()[
        "data"
    ]
    kinds = sorted(e["kind"] for e in entries)
    assert kinds == ["bonus", "debit"], entries
    grant = next(e for e in entries if e["kind"] == "bonus")
    assert grant["amount"] == "1000" and "sign-up grant" in grant["reason"]
