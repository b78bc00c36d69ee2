"""BYOK storage, masking, validation, rotation, and that no secret lands in the DB or logs."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text

from config.runtime import Resources
from domain.crypto import SecretBox
from domain.identity import repository as identity_repo
from domain.rotation import rotate_all
from tests.fixtures.portal import PASSWORD, create_key, signup

OPENROUTER = "sk-or-v1-" + "0123456789abcdef" * 4
ANTHROPIC = "sk-ant-api03-" + "Zx9" * 20
GOOGLE = "AIza" + "B" * 35


async def _dump_database(resources: Resources) -> str:
    """Every row of every table as text: what a stolen backup would show."""
    async with resources.sessions() as s:
        tables = (
            await s.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
            )
        ).scalars()
        parts = []
        for table in list(tables):
            rows = await s.execute(text(f'SELECT t::text FROM "{table}" t'))
            parts.extend(r[0] for r in rows)
    return "\n".join(parts)


async def test_put_list_patch_delete(client: httpx.AsyncClient, resources: Resources) -> None:
    user = await signup(client)
    h = user.headers()
    created = await client.put(
        "/portal/v1/byok", json={"provider": "openrouter", "api_key": OPENROUTER, "label": "team"},
        headers=h,
    )  # fmt: skip
    assert created.status_code == 201, created.text
    assert created.json()["key_hint"] == f"sk-or-…{OPENROUTER[-4:]}"
    replaced = await client.put(
        "/portal/v1/byok", json={"provider": "openrouter", "api_key": OPENROUTER[:-4] + "ffff"},
        headers=h,
    )  # fmt: skip
    assert replaced.status_code == 200 and replaced.json()["key_hint"].endswith("ffff")

    listed = await client.get("/portal/v1/byok", headers=h)
    assert [r["provider"] for r in listed.json()["data"]] == ["openrouter"]
    assert OPENROUTER[8:-4] not in listed.text

    off = await client.patch("/portal/v1/byok/openrouter", json={"enabled": False}, headers=h)
    assert off.status_code == 200 and off.json()["enabled"] is False
    assert (await client.delete("/portal/v1/byok/openrouter", headers=h)).status_code == 204
    assert (await client.delete("/portal/v1/byok/openrouter", headers=h)).status_code == 404
    assert (
        await client.patch("/portal/v1/byok/openrouter", json={"enabled": True}, headers=h)
    ).status_code == 404

    async with resources.sessions() as s:
        actions = (
            await s.execute(
                text("SELECT action FROM audit_events WHERE target_type = 'byok_key' ORDER BY id")
            )
        ).scalars()
        assert list(actions) == ["byok.created", "byok.replaced", "byok.disabled", "byok.deleted"]


async def test_replace_audit_keeps_the_old_key_as_before(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    user = await signup(client)
    h = user.headers()
    body = {"provider": "openrouter", "api_key": OPENROUTER, "label": "team"}
    assert (await client.put("/portal/v1/byok", json=body, headers=h)).status_code == 201
    body = {"provider": "openrouter", "api_key": OPENROUTER[:-4] + "ffff", "label": "ops"}
    assert (await client.put("/portal/v1/byok", json=body, headers=h)).status_code == 200
    async with resources.sessions() as s:
        before, after = (
            await s.execute(
                text(
                    "SELECT before, after FROM audit_events WHERE action = 'byok.replaced'"
                    " AND org_id = :org"
                ),
                {"org": user.org_id},
            )
        ).one()
    assert before != after
    assert before["label"] == "team" and after["label"] == "ops"


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"provider": "openai", "api_key": "pk-123"}, "openai key"),
        ({"provider": "anthropic", "api_key": "sk-" + "a" * 40}, "anthropic key"),
        ({"provider": "google", "api_key": "AIza123"}, "google key"),
        ({"provider": "openrouter", "api_key": "sk-or-v1-short"}, "openrouter key"),
        ({"provider": "ollama", "api_key": ""}, "base_url"),
        (
            {"provider": "openai_compatible", "api_key": "abcdefgh123", "base_url": "ftp://x"},
            "http",
        ),
        (
            {"provider": "openai_compatible", "api_key": "abcdefgh1", "base_url": "https://u:p@h"},
            "credentials",
        ),
        ({"provider": "openai", "api_key": "sk-" + "a" * 40, "base_url": "https://x"}, "base_url"),
    ],
)
async def test_format_validation_is_a_clear_400(
    client: httpx.AsyncClient, body: dict[str, str], needle: str
) -> None:
    user = await signup(client)
    resp = await client.put("/portal/v1/byok", json=body, headers=user.headers())
    assert resp.status_code == 400, resp.text
    assert needle in resp.json()["error"]["message"]
    if body["api_key"]:
        assert body["api_key"] not in resp.text


async def test_unknown_provider_is_400(client: httpx.AsyncClient) -> None:
    user = await signup(client)
    resp = await client.put(
        "/portal/v1/byok", json={"provider": "acme", "api_key": "abcdefgh"}, headers=user.headers()
    )
    assert resp.status_code == 400


async def test_members_cannot_change_byok(client: httpx.AsyncClient, resources: Resources) -> None:
    owner = await signup(client)
    member = await signup(client)
    async with resources.sessions.begin() as s:
        await identity_repo.insert_membership(s, member.user_id, owner.org_id, "member")
    resp = await client.put(
        "/portal/v1/byok",
        json={"provider": "google", "api_key": GOOGLE},
        headers=member.headers(owner.org_id),
    )
    assert resp.status_code == 403


async def test_no_plaintext_secret_in_database_or_logs(
    client: httpx.AsyncClient, resources: Resources, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    user = await signup(client)
    keys = [str((await create_key(client, user))["key"]) for _ in range(2)]
    for provider, secret, extra in [
        ("openrouter", OPENROUTER, {}),
        ("anthropic", ANTHROPIC, {}),
        ("google", GOOGLE, {}),
        ("openai_compatible", "tok-" + "q" * 30, {"base_url": "https://llm.example.com/v1"}),
    ]:
        resp = await client.put(
            "/portal/v1/byok",
            json={"provider": provider, "api_key": secret, **extra},
            headers=user.headers(),
        )
        assert resp.status_code == 201, resp.text
    for key in keys:
        await resources.key_auth.authenticate(key)
    await resources.key_auth.drain()

    dump = await _dump_database(resources)
    logs = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records) + caplog.text
    secrets = [*keys, OPENROUTER, ANTHROPIC, GOOGLE, "tok-" + "q" * 30, PASSWORD, user.token]
    for secret in secrets:
        assert secret not in dump, "plaintext secret in the database"
        assert secret not in logs, "plaintext secret in the logs"
        assert secret[8:-4] not in dump
    assert "oxi_" in dump  # the display prefix is there, and only that


async def test_rotation_re_encrypts_under_the_new_key(
    resources: Resources, client: httpx.AsyncClient
) -> None:
    user = await signup(client)
    await client.put(
        "/portal/v1/byok", json={"provider": "google", "api_key": GOOGLE}, headers=user.headers()
    )
    old_key = resources.settings.encryption_key_list[0]
    new_key = Fernet.generate_key().decode()
    both = SecretBox([new_key, old_key])

    async def ciphertexts() -> list[str]:
        async with resources.sessions() as s:
            return list(
                (await s.execute(text("SELECT secret_ciphertext FROM byok_keys"))).scalars()
            )

    # Before rotation the row still decrypts once a new key is added in front.
    assert both.decrypt((await ciphertexts())[0]) == GOOGLE
    report = await rotate_all(resources.sessions, both, batch_size=1)
    assert report.rotated["byok_keys"] == 1
    only_new = SecretBox([new_key])
    assert [only_new.decrypt(c) for c in await ciphertexts()] == [GOOGLE]
    again = await rotate_all(resources.sessions, both)
    assert again.rotated["byok_keys"] == 0 and again.already_current["byok_keys"] == 1


async def test_secrets_rotate_command(
    resources: Resources, client: httpx.AsyncClient, database_url: str, tmp_path: Path
) -> None:
    user = await signup(client)
    for provider, secret in (("google", GOOGLE), ("anthropic", ANTHROPIC)):
        await client.put(
            "/portal/v1/byok",
            json={"provider": provider, "api_key": secret},
            headers=user.headers(),
        )
    new_key = Fernet.generate_key().decode()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OXINF_")} | {
        "OXINF_ENV": "test",
        "OXINF_DATA_DIR": str(tmp_path),
        "OXINF_DATABASE_URL": database_url,
        "OXINF_HMAC_PEPPER": resources.identity.pepper,
        "OXINF_ENCRYPTION_KEYS": f"{new_key},{resources.settings.encryption_key_list[0]}",
    }
    out = subprocess.run(
        [sys.executable, "-m", "cli", "secrets", "rotate"], env=env, capture_output=True, text=True,
        check=True, cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    assert "byok_keys: 2 re-encrypted, 0 already under the first key" in out.stdout
    assert "channels: 0 re-encrypted" in out.stdout
    async with resources.sessions() as s:
        rows = list((await s.execute(text("SELECT secret_ciphertext FROM byok_keys"))).scalars())
    assert sorted(SecretBox([new_key]).decrypt(c) for c in rows) == sorted([GOOGLE, ANTHROPIC])
    assert uuid.UUID(str(user.org_id))
