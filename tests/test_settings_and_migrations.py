"""Configuration refuses unsafe production starts; startup refuses an unmigrated database."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest
from alembic import command
from cryptography.fernet import Fernet
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import Connection, text
from sqlalchemy.exc import IntegrityError

from api.app import create_app
from config.settings import ConfigError, Settings
from schema.db import create_engine
from schema.migrate import (
    DatabaseNotMigrated,
    alembic_config,
    current_revision,
    head_revision,
    upgrade,
)
from tests.fixtures.db import create_database, drop_database

GOOD = {
    "env": "production",
    "database_url": "postgresql://u:p@db/oxinf",
    "temporal_address": "temporal:7233",
    "hmac_pepper": SecretStr(secrets.token_hex(32)),
    "encryption_keys": SecretStr(Fernet.generate_key().decode()),
}


def test_production_accepts_real_secrets() -> None:
    assert Settings(**GOOD).env == "production"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("hmac_pepper", SecretStr("changeme"), "OXINF_HMAC_PEPPER"),
        ("hmac_pepper", SecretStr("short"), "at least 32"),
        ("encryption_keys", SecretStr(""), "OXINF_ENCRYPTION_KEYS"),
        ("encryption_keys", SecretStr("not-a-fernet-key"), "not a Fernet key"),
        ("database_url", None, "OXINF_DATABASE_URL"),
        ("temporal_address", None, "OXINF_TEMPORAL_ADDRESS"),
    ],
)
def test_production_refuses_placeholders(field: str, value: object, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        Settings(**{**GOOD, field: value})  # type: ignore[arg-type]


def test_dev_generates_and_persists_local_secrets(tmp_path: Path) -> None:
    first = Settings(env="dev", data_dir=tmp_path).with_local_secrets()
    second = Settings(env="dev", data_dir=tmp_path).with_local_secrets()
    assert len(first.hmac_pepper.get_secret_value()) == 64
    Fernet(first.encryption_key_list[0].encode())
    assert first.hmac_pepper == second.hmac_pepper
    assert first.encryption_keys == second.encryption_keys
    stored = tmp_path / "secrets.json"
    assert stored.stat().st_mode & 0o077 == 0, "secrets file must be private"
    assert set(json.loads(stored.read_text())) == {"hmac_pepper", "encryption_keys"}


async def test_startup_refuses_unmigrated_database(server_url: str, tmp_path: Path) -> None:
    name = "oxinf_unmigrated_" + secrets.token_hex(3)
    url = await create_database(server_url, name)
    try:
        settings = Settings(env="test", data_dir=tmp_path, database_url=url)
        app: FastAPI = create_app(settings.with_local_secrets())
        with pytest.raises(DatabaseNotMigrated, match="oxinf migrate"):
            async with app.router.lifespan_context(app):
                pass
    finally:
        await drop_database(server_url, name)


def test_migrations_have_one_head() -> None:
    assert head_revision() is not None


async def test_0004_turns_membership_labels_into_departments_and_cost_centers(
    server_url: str,
) -> None:
    """Labels typed before 0004 become one entity per org and label, case-insensitively."""
    name = "oxinf_mig0004_" + secrets.token_hex(3)
    url = await create_database(server_url, name)
    engine = create_engine(url, pool_size=1)
    try:
        await upgrade(engine, "0003")
        async with engine.begin() as conn:
            org = (await conn.execute(text(
                "INSERT INTO orgs (id, name) VALUES (gen_random_uuid(), 'acme') RETURNING id"
            ))).scalar_one()  # fmt: skip
            for i, (dept, cc) in enumerate([("R&D", "cc-1"), (" r&d ", "CC-1"), (None, " ")]):
                user = (await conn.execute(text(
                    "INSERT INTO users (id, email, password_hash) VALUES"
                    " (gen_random_uuid(), :e, 'x') RETURNING id"
                ), {"e": f"u{i}@example.com"})).scalar_one()  # fmt: skip
                await conn.execute(
                    text(
                        "INSERT INTO memberships (id, user_id, org_id, role, department,"
                        " cost_center) VALUES (gen_random_uuid(), :u, :o, 'member', :d, :c)"
                    ),
                    {"u": user, "o": org, "d": dept, "c": cc},
                )
        await upgrade(engine)
        async with engine.connect() as conn:
            depts = (await conn.execute(text("SELECT name FROM departments"))).scalars().all()
            ccs = (await conn.execute(text("SELECT code FROM cost_centers"))).scalars().all()
            assigned = (await conn.execute(text(
                "SELECT count(department_id), count(cost_center_id) FROM memberships"
            ))).one()  # fmt: skip
        assert len(depts) == 1 and depts[0].lower() == "r&d"
        assert len(ccs) == 1 and ccs[0].lower() == "cc-1"
        assert tuple(assigned) == (2, 2)
    finally:
        await engine.dispose()
        await drop_database(server_url, name)


def _downgrade(sync_conn: Connection, target: str) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = sync_conn
    command.downgrade(cfg, target)


async def test_0006_task_submissions_downgrade_and_upgrade_again(server_url: str) -> None:
    """The migration is reversible: down to 0005 drops both tables, up again recreates them."""
    name = "oxinf_mig0006_" + secrets.token_hex(3)
    url = await create_database(server_url, name)
    engine = create_engine(url, pool_size=1)
    tables = text(
        "SELECT count(*) FROM information_schema.tables"
        " WHERE table_name IN ('task_submissions', 'task_orphan_jobs')"
    )
    try:
        await upgrade(engine)
        async with engine.connect() as conn:
            assert (await conn.execute(tables)).scalar_one() == 2
        async with engine.begin() as conn:
            await conn.run_sync(_downgrade, "0005")
        assert await current_revision(engine) == "0005"
        async with engine.connect() as conn:
            assert (await conn.execute(tables)).scalar_one() == 0
        await upgrade(engine)
        assert await current_revision(engine) == head_revision()
    finally:
        await engine.dispose()
        await drop_database(server_url, name)


async def test_0008_dedupes_callback_attempts_then_refuses_duplicates_and_reverses(
    server_url: str,
) -> None:
    """Duplicates left before 0008 are removed (the delivered row of each attempt wins, else
    the first); then a second row for the same (task, event, attempt) is refused, and the
    downgrade lifts the constraint again."""
    name = "oxinf_mig0008_" + secrets.token_hex(3)
    url = await create_database(server_url, name)
    engine = create_engine(url, pool_size=1)
    insert = text(
        "INSERT INTO callback_attempts (task_id, org_id, event, webhook_id, attempt, url,"
        " outcome, http_status) VALUES (:t, :o, :e, 'msg_1', :a, 'https://x.test/', :out, :st)"
    )
    try:
        await upgrade(engine, "0007")
        async with engine.begin() as conn:
            org = (await conn.execute(text(
                "INSERT INTO orgs (id, name) VALUES (gen_random_uuid(), 'acme') RETURNING id"
            ))).scalar_one()  # fmt: skip
            task = (await conn.execute(text(
                "INSERT INTO tasks (id, org_id, type, model, status) VALUES"
                " (gen_random_uuid(), :o, 'image', 'm', 'succeeded') RETURNING id"
            ), {"o": org})).scalar_one()  # fmt: skip
            rows = [
                ("task.succeeded", 1, "http_error", 500),
                ("task.succeeded", 1, "delivered", 200),  # kept: it delivered
                ("task.succeeded", 1, "timeout", None),
                ("task.succeeded", 2, "timeout", None),  # kept: the first
                ("task.succeeded", 2, "http_error", 502),
                ("task.failed", 1, "http_error", 503),  # another event: untouched
            ]
            for event, attempt, outcome, status in rows:
                await conn.execute(
                    insert,
                    {"t": task, "o": org, "e": event, "a": attempt, "out": outcome, "st": status},
                )
        await upgrade(engine, "0008")
        assert await current_revision(engine) == "0008"
        listing = text(
            "SELECT event, attempt, outcome FROM callback_attempts ORDER BY event, attempt"
        )
        async with engine.connect() as conn:
            kept = [tuple(r) for r in (await conn.execute(listing)).all()]
        assert kept == [
            ("task.failed", 1, "http_error"),
            ("task.succeeded", 1, "delivered"),
            ("task.succeeded", 2, "timeout"),
        ]
        again = {"t": task, "o": org, "e": "task.failed", "a": 1, "out": "timeout", "st": None}
        with pytest.raises(IntegrityError):
            async with engine.begin() as conn:
                await conn.execute(insert, again)
        async with engine.begin() as conn:
            await conn.run_sync(_downgrade, "0007")
        async with engine.begin() as conn:
            await conn.execute(insert, again)  # no constraint below 0008
        await upgrade(engine)  # and up again, deduping what the downgrade let in
        assert await current_revision(engine) == head_revision()
        async with engine.connect() as conn:
            assert [tuple(r) for r in (await conn.execute(listing)).all()] == kept
    finally:
        await engine.dispose()
        await drop_database(server_url, name)
