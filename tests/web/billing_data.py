"""Rows the billing pages read, written straight through the domain's repositories."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import httpx

from config.runtime import Resources
from domain.audit.service import SYSTEM
from domain.callbacks import repository as callbacks_repo
from domain.identity import service as identity
from domain.identity.service import OrgContext
from domain.keys.service import create_key
from domain.tasks import repository as tasks_repo
from domain.usage import repository as usage_repo


async def own_ctx(resources: Resources, client: httpx.AsyncClient) -> OrgContext:
    async with resources.sessions() as s:
        user = await identity.authenticate_session(
            s, resources.identity, client.cookies["oxinf_session"]
        )
        ctx = await identity.org_context(s, user, None, None)
    return OrgContext(user, ctx.org, ctx.role, SYSTEM)


async def new_key(resources: Resources, ctx: OrgContext, name: str) -> uuid.UUID:
    async with resources.sessions.begin() as s:
        key, _ = await create_key(s, ctx, resources.identity.pepper, name=name)
    return key.id


async def add_log(
    resources: Resources,
    org_id: uuid.UUID,
    *,
    key_id: uuid.UUID | None = None,
    model: str = "gpt-test",
    cost_micros: int = 0,
    status: str = "succeeded",
    at: datetime | None = None,
    **extra: Any,
) -> str:
    request_id = f"req_{uuid.uuid4().hex[:24]}"
    log = {
        "id": request_id,
        "org_id": org_id,
        "api_key_id": key_id,
        "model": model,
        "status": status,
        "http_status": 200 if status == "succeeded" else 502,
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "cost_micros": cost_micros,
        "latency_ms": 42,
        "created_at": at or datetime.now(UTC),
        **extra,
    }
    async with resources.sessions.begin() as s:
        await usage_repo.insert_log(s, log, [], None)
    return request_id


async def add_task(resources: Resources, org_id: uuid.UUID, **values: Any) -> uuid.UUID:
    task_id = uuid.uuid4()
    row = {
        "id": task_id,
        "org_id": org_id,
        "type": "image",
        "model": "img-test",
        "status": "succeeded",
        "progress": 100,
        "input": {"prompt": "a cat"},
        "charged_micros": 40_000,
        "refunded_micros": 0,
        "result": {"urls": ["https://cdn.example.com/cat.png"]},
        **values,
    }
    async with resources.sessions.begin() as s:
        await tasks_repo.insert_task(s, row)
    return task_id


async def add_callback(resources: Resources, org_id: uuid.UUID, task_id: uuid.UUID) -> None:
    async with resources.sessions.begin() as s:
        await callbacks_repo.insert_attempt(
            s,
            {
                "task_id": task_id,
                "org_id": org_id,
                "event": "task.succeeded",
                "webhook_id": "wh_1",
                "attempt": 1,
                "url": "https://hooks.example.com/x",
                "http_status": 500,
                "outcome": "failed",
                "error": "HTTP 500 from the callback URL",
                "latency_ms": 12,
            },
        )
