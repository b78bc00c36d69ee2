"""A channel's `capabilities` through the admin API: `responses_api` is stored, returned,
patched away, and refused (400 naming the field) on a provider that cannot speak it."""

from __future__ import annotations

import httpx
from sqlalchemy import text

from config.runtime import Resources
from tests.fixtures.portal import signup


async def test_responses_capability_round_trips_and_is_refused_off_the_openai_family(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    operator = await signup(client)
    async with resources.sessions.begin() as s:
        await s.execute(
            text("UPDATE users SET is_operator = true WHERE id = :u"), {"u": operator.user_id}
        )
    h = operator.headers()
    body = {
        "name": "vllm", "provider": "openai_compatible", "base_url": "https://llm.example.com/v1",
        "models": ["m"], "capabilities": ["responses_api"],
    }  # fmt: skip
    created = await client.post("/admin/v1/channels", json=body, headers=h)
    assert created.status_code == 201, created.text
    assert created.json()["capabilities"] == ["responses_api"]
    channel = created.json()["id"]

    plain = await client.post(
        "/admin/v1/channels", json={**body, "name": "p", "capabilities": []}, headers=h
    )
    assert plain.status_code == 201 and plain.json()["capabilities"] == []
    default = {k: v for k, v in body.items() if k != "capabilities"}
    made = await client.post("/admin/v1/channels", json={**default, "name": "d"}, headers=h)
    assert made.json()["capabilities"] == []  # declared, never assumed

    patched = await client.patch(
        f"/admin/v1/channels/{channel}", json={"capabilities": []}, headers=h
    )
    assert patched.status_code == 200 and patched.json()["capabilities"] == []

    unknown = await client.post(
        "/admin/v1/channels", json={**body, "name": "u", "capabilities": ["telepathy"]}, headers=h
    )
    assert unknown.status_code == 400 and unknown.json()["error"]["param"].startswith(
        "capabilities"
    )
    wrong = await client.post(
        "/admin/v1/channels",
        json={**body, "name": "a", "provider": "anthropic", "base_url": None},
        headers=h,
    )
    assert wrong.status_code == 400 and wrong.json()["error"]["param"] == "capabilities"
