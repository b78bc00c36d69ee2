"""Billing tests: the API app over ASGI with Stripe configured against the fake, and a
worker running every workflow on its own task queue of a real Temporal server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import text
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities.deps import ActivityDeps
from api.app import create_app
from config.runtime import Resources
from config.settings import Settings
from config.temporal import TemporalHandle
from tests.fakes.stripe import FakeStripe, signed
from tests.fixtures.conditions import eventually
from tests.fixtures.portal import PortalUser, signup
from tests.fixtures.temporal import workflow_result
from worker import build_worker
from workflows.payments import StripeEventReport, stripe_event_workflow_id

WEBHOOK_SECRET = "whsec_test_" + "1" * 32
MICROS = 1_000_000
T = TypeVar("T")
ACTIVITY_DONE = EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED


@pytest.fixture(scope="session")
def fake_stripe() -> Iterator[FakeStripe]:
    with FakeStripe() as fake:
        yield fake


@pytest.fixture(autouse=True)
def _reset_fake_stripe(fake_stripe: FakeStripe) -> None:
    fake_stripe.reset()


def billing_settings(base: Settings, fake: FakeStripe, queue: str, **extra: Any) -> Settings:
    return base.model_copy(
        update={
            "stripe_api_key": SecretStr(fake.api_key),
            "stripe_api_base": fake.base_url,
            "stripe_webhook_secret": SecretStr(WEBHOOK_SECRET),
            "task_queue": queue,
            **extra,
        }
    )


def resources_with(
    resources: Resources, settings: Settings, client: Client | None = None
) -> Resources:
    """The test run's pools and HTTP client under other settings, with Temporal at `client`
    (None: connect where `settings` say, on first use)."""
    return Resources(
        settings=settings,
        engine=resources.engine,
        sessions=resources.sessions,
        http=resources.http,
        temporal=TemporalHandle(settings, client),
    )


def deps_for(resources: Resources, settings: Settings) -> ActivityDeps:
    return ActivityDeps(settings=settings, sessions=resources.sessions, http=resources.http)


async def result_of(env: WorkflowEnvironment, workflow_id: str, result_type: type[T]) -> T:
    """Wait for a workflow the API (not this test) started, letting the server skip time."""
    return await workflow_result(env, workflow_id, result_type)


@dataclass
class Billing:
    resources: Resources
    settings: Settings
    client: httpx.AsyncClient
    env: WorkflowEnvironment
    fake: FakeStripe

    async def deliver(
        self, event: dict[str, Any], *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None
    ) -> httpx.Response:
        body, headers = signed(event, secret, timestamp=timestamp)
        return await self.client.post("/webhooks/stripe", content=body, headers=headers)

    async def processed(self, event_id: str) -> StripeEventReport:
        return await result_of(self.env, stripe_event_workflow_id(event_id), StripeEventReport)

    async def attempted(self, event_id: str) -> None:
        """Wait until the event's workflow has applied it once (deferred, say), so an event
        delivered next is applied after it, not raced with it."""
        handle = self.env.client.get_workflow_handle(stripe_event_workflow_id(event_id))

        async def applied_once() -> bool:
            history = await handle.fetch_history()
            return any(e.event_type == ACTIVITY_DONE for e in history.events)

        await eventually(applied_once, within=10, what=f"{event_id} applied once")

    async def checkout(self, user: PortalUser, package_id: str = "starter_10", **extra: Any) -> Any:
        resp = await self.client.post(
            "/portal/v1/credits/checkout",
            json={"package_id": package_id, **extra},
            headers=user.headers(),
        )
        assert resp.status_code == 201, resp.text
        return resp.json()

    async def buy(self, user: PortalUser, package_id: str = "starter_10", **extra: Any) -> Any:
        """Checkout, pay and deliver the completion: returns the checkout response."""
        out = await self.checkout(user, package_id, **extra)
        event = self.fake.completed(out["payment"]["checkout_session_id"])
        assert (await self.deliver(event)).status_code == 200
        assert (await self.processed(event["id"])).outcome.result == "credited"
        return out


@pytest.fixture
async def billing(
    resources: Resources, time_skipping_env: WorkflowEnvironment, fake_stripe: FakeStripe
) -> AsyncIterator[Billing]:
    queue = f"billing-{uuid.uuid4()}"
    settings = billing_settings(resources.settings, fake_stripe, queue)
    res = resources_with(resources, settings, time_skipping_env.client)
    app = create_app(resources=res)
    transport = httpx.ASGITransport(app=app)
    async with (
        build_worker(time_skipping_env.client, deps_for(resources, settings), queue),
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as client,
    ):
        yield Billing(res, settings, client, time_skipping_env, fake_stripe)


async def owner(billing: Billing) -> PortalUser:
    return await signup(billing.client)


async def add_member(
    resources: Resources, org_id: uuid.UUID, user_id: uuid.UUID, role: str
) -> None:
    async with resources.sessions.begin() as s:
        await s.execute(
            text("INSERT INTO memberships (id, user_id, org_id, role) VALUES (:id, :u, :o, :r)"),
            {"id": uuid.uuid4(), "u": user_id, "o": org_id, "r": role},
        )


async def scalar(resources: Resources, sql: str, **params: Any) -> Any:
    async with resources.sessions() as s:
        return (await s.execute(text(sql), params)).scalar_one()


async def rows(resources: Resources, sql: str, **params: Any) -> list[Any]:
    async with resources.sessions() as s:
        return list((await s.execute(text(sql), params)).mappings().all())


async def gather(*aws: Any) -> list[Any]:
    return list(await asyncio.gather(*aws))
