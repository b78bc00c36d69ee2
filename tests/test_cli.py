"""The `oxinf` administration commands against the test database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from config.runtime import Resources

ROOT = Path(__file__).resolve().parents[1]


def cli_env(resources: Resources, database_url: str, tmp_path: Path) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("OXINF_")} | {
        "OXINF_ENV": "test",
        "OXINF_DATA_DIR": str(tmp_path),
        "OXINF_DATABASE_URL": database_url,
        "OXINF_HMAC_PEPPER": resources.identity.pepper,
        "OXINF_ENCRYPTION_KEYS": ",".join(resources.settings.encryption_key_list),
        "OXINF_BCRYPT_ROUNDS": "4",
    }


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args], env=env, capture_output=True, text=True, cwd=ROOT
    )


async def test_admin_create_user(
    resources: Resources, database_url: str, tmp_path: Path, client: httpx.AsyncClient
) -> None:
    env = cli_env(resources, database_url, tmp_path)
    created = run_cli(
        env, "admin", "create-user", "--email", "ops@example.com",
        "--password", "long-enough-pass-1", "--operator",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert "created operator ops@example.com" in created.stdout
    again = run_cli(
        env, "admin", "create-user", "--email", "OPS@example.com", "--password", "another-pass-22"
    )
    assert again.returncode == 1 and "already exists" in again.stderr
    login = await client.post(
        "/portal/v1/auth/login", json={"email": "ops@example.com", "password": "long-enough-pass-1"}
    )
    me = await client.get(
        "/portal/v1/me", headers={"authorization": f"Bearer {login.json()['token']}"}
    )
    assert me.json()["is_operator"] is True


async def test_admin_grant_credits(
    resources: Resources, database_url: str, tmp_path: Path, client: httpx.AsyncClient
) -> None:
    from tests.fixtures.portal import signup

    user = await signup(client)
    env = cli_env(resources, database_url, tmp_path)
    args = ["admin", "grant-credits", "--org", str(user.org_id), "--credits", "12.5"]
    no_reason = run_cli(env, *args)
    assert no_reason.returncode != 0 and "--reason" in no_reason.stderr
    done = run_cli(env, *args, "--reason", "pilot", "--kind", "bonus", "--idempotency-key", "p1")
    assert done.returncode == 0, done.stderr
    assert "applied: bonus 12.5 credits, balance now 12.5" in done.stdout
    again = run_cli(env, *args, "--reason", "pilot", "--kind", "bonus", "--idempotency-key", "p1")
    assert "already applied" in again.stdout
    bal = (await client.get("/portal/v1/credits/balance", headers=user.headers())).json()
    assert bal["balance"] == "12.5"
    too_fine = run_cli(env, "admin", "grant-credits", "--org", str(user.org_id), "--credits",
                       "0.0000001", "--reason", "x")  # fmt: skip
    assert too_fine.returncode == 1 and "6 decimals" in too_fine.stderr
