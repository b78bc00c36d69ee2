"""Admission is one rule set for chat and tasks, and a warm memo admits without a session."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from sqlalchemy import text

from config.runtime import Resources
from domain.admission import service as admission
from domain.errors import DomainError
from domain.keys.auth import KeyPrincipal
from domain.relay.cache import TtlCache
from domain.relay.plan import OnDemandSession
from schema.db import SessionFactory
from tests.fixtures.relay import add_model, make_tenant
from tests.fixtures.tasks import add_media_model


def principal(org_id: uuid.UUID, key_id: uuid.UUID, allow: set[str] | None = None) -> KeyPrincipal:
    return KeyPrincipal(
        key_id=key_id,
        org_id=org_id,
        name="admission test",
        scopes=frozenset({"llm:inference", "tasks"}),
        model_allowlist=frozenset(allow) if allow is not None else None,
        rpm_limit=None,
        budget_micros=None,
        log_content=False,
        expires_at=None,
    )


class CountingSessions:
    """A session factory that counts the sessions it opens."""

    def __init__(self, sessions: SessionFactory) -> None:
        self.sessions = sessions
        self.opened = 0

    def __call__(self) -> Any:
        self.opened += 1
        return self.sessions()


async def _admit(
    resources: Resources,
    surface: admission.Surface,
    key: KeyPrincipal,
    name: str,
    memo: TtlCache | None = None,
) -> admission.Admitted:
    async with resources.sessions() as s:
        return await admission.admit(
            admission.SessionReader(s), surface, key, name, now=datetime.now(UTC), memo=memo
        )


async def test_a_warm_memo_admits_without_opening_a_session(resources: Resources) -> None:
    tenant = await make_tenant(resources)
    await add_model(resources, "adm-fallback")
    await add_model(resources, "adm-main", fallback_models=["adm-fallback"])
    key = principal(tenant.org_id, tenant.key_id)
    memo, counting = TtlCache(60), CountingSessions(resources.sessions)
    for expected_sessions in (1, 1):  # cold, then warm
        reader = OnDemandSession(cast(SessionFactory, counting))
        try:
            admitted = await admission.admit(
                reader, admission.CHAT, key, "adm-main", now=datetime.now(UTC), memo=memo
            )
        finally:
            await reader.close()
        assert counting.opened == expected_sessions
        assert [c.model.name for c in admitted.candidates] == ["adm-main", "adm-fallback"]
        assert admitted.org.id == tenant.org_id and admitted.price.model == "adm-main"


async def test_fallbacks_are_admitted_only_where_the_caller_may_use_them(
    resources: Resources,
) -> None:
    tenant = await make_tenant(resources)
    for name in ("adm-b", "adm-c", "adm-d"):
        await add_model(resources, name)
    await add_model(resources, "adm-a", fallback_models=["adm-b", "adm-c", "adm-d"])
    async with resources.sessions.begin() as s:
        await s.execute(text("UPDATE models SET enabled = false WHERE name = 'adm-c'"))
    key = principal(tenant.org_id, tenant.key_id, allow={"adm-a", "adm-c", "adm-d"})
    admitted = await _admit(resources, admission.CHAT, key, "adm-a")
    # b: not on the key's allowlist; c: disabled.
    assert [c.model.name for c in admitted.candidates] == ["adm-a", "adm-d"]
    # A task surface never falls back.
    await add_media_model(resources, "adm-img", "image")
    async with resources.sessions.begin() as s:
        await s.execute(
            text("UPDATE models SET fallback_models = '[\"adm-d\"]' WHERE name = 'adm-img'")
        )
    key = principal(tenant.org_id, tenant.key_id)
    image = await _admit(resources, admission.task_surface("image"), key, "adm-img")
    assert [c.model.name for c in image.candidates] == ["adm-img"]


@pytest.mark.parametrize(
    ("surface", "message"),
    [
        (admission.CHAT, "unknown model 'adm-x'"),
        (admission.task_surface("video"), "unknown video model 'adm-x'"),
    ],
)
async def test_every_surface_hears_the_same_refusals(
    resources: Resources, surface: admission.Surface, message: str
) -> None:
    tenant = await make_tenant(resources)
    await add_media_model(resources, "adm-image", "image")
    key = principal(tenant.org_id, tenant.key_id)

    async def refusal(name: str, who: KeyPrincipal = key) -> tuple[str, str]:
        with pytest.raises(DomainError) as caught:
            admission.require_scope(who, surface.scope)
            admission.check_model_name(name)
            admission.require_key_allows(who, name)
            await _admit(resources, surface, who, name)
        return caught.value.code, caught.value.message

    assert await refusal("adm-x") == ("invalid_request", message)
    if surface.model_type != "image":
        wrong = message.replace("adm-x", "adm-image")
        assert await refusal("adm-image") == ("invalid_request", wrong)
    async with resources.sessions.begin() as s:
        await s.execute(
            text("UPDATE models SET type = :t WHERE name = 'adm-image'"), {"t": surface.model_type}
        )
        await s.execute(text("DELETE FROM model_prices"))
    assert await refusal("adm-image") == ("invalid_request", "model 'adm-image' has no price yet")
    async with resources.sessions.begin() as s:
        department = uuid.uuid4()
        await s.execute(
            text(
                "INSERT INTO departments (id, org_id, name, model_allowlist)"
                " VALUES (:d, :o, 'Legal', CAST('[\"other\"]' AS jsonb))"
            ),
            {"d": department, "o": tenant.org_id},
        )
        await s.execute(
            text("UPDATE memberships SET department_id = :d WHERE user_id = :u"),
            {"d": department, "u": tenant.user_id},
        )
    assert await refusal("adm-image") == (
        "model_not_allowed",
        "your department's policy does not allow model 'adm-image'",
    )
    narrow = principal(tenant.org_id, tenant.key_id, allow={"other"})
    assert await refusal("adm-image", narrow) == (
        "model_not_allowed",
        "this key may not use model 'adm-image'",
    )
    scopeless = KeyPrincipal(**{**narrow.__dict__, "scopes": frozenset()})
    assert await refusal("adm-image", scopeless) == (
        "permission_denied",
        f"this key lacks the {surface.scope} scope",
    )
    orphan = principal(uuid.uuid4(), tenant.key_id)
    if surface.model_type == "chat":
        await add_model(resources, "adm-priced")
    else:
        await add_media_model(resources, "adm-priced", surface.model_type)
    assert await refusal("adm-priced", orphan) == (
        "permission_denied",
        "this key's org no longer exists",
    )
