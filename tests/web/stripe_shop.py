"""The console served with a (fake) Stripe and a worker for its webhooks, for the walks that
pay: credits (`test_console_billing_walk`) and plans (`test_console_plan_walk`)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from config.runtime import Resources
from tests.billing.conftest import (
    WEBHOOK_SECRET,
    billing_settings,
    deps_for,
    resources_with,
    result_of,
)
from tests.fakes.stripe import FakeStripe, signed
from tests.fixtures.relay import live_server
from worker import build_worker
from workflows.payments import StripeEventReport, stripe_event_workflow_id

MICROS = 1_000_000
CHECKOUT_HOST = "https://checkout.fake.stripe.test/"


@pytest.fixture(scope="module")
def stripe() -> Iterator[FakeStripe]:
    with FakeStripe() as fake:
        yield fake


@dataclass
class Shop:
    url: str
    resources: Resources
    env: WorkflowEnvironment
    stripe: FakeStripe

    async def deliver(self, event: dict[str, object]) -> str:
        """Post the signed event and wait for its workflow's outcome."""
        body, headers = signed(event, WEBHOOK_SECRET)
        async with httpx.AsyncClient() as http:
            resp = await http.post(f"{self.url}/webhooks/stripe", content=body, headers=headers)
        assert resp.status_code == 200, resp.text
        workflow_id = stripe_event_workflow_id(str(event["id"]))
        report = await result_of(self.env, workflow_id, StripeEventReport)
        return report.outcome.result


@asynccontextmanager
async def open_shop(
    resources: Resources,
    env: WorkflowEnvironment,
    stripe: FakeStripe,
    queue_prefix: str,
    **settings: Any,
) -> AsyncIterator[Shop]:
    """The app on a real socket with Stripe pointed at the fake, and a worker on its own
    queue (time-skipping Temporal) to process the webhooks."""
    stripe.reset()
    queue = f"{queue_prefix}-{uuid.uuid4()}"
    configured = billing_settings(resources.settings, stripe, queue, **settings)
    res = resources_with(resources, configured, env.client)
    async with (
        build_worker(env.client, deps_for(resources, configured), queue),
        live_server(create_app(resources=res)) as url,
    ):
        yield Shop(url, res, env, stripe)


def micros_of(text: str) -> int:
    """Exact micro-credits of an amount as a page shows it ("20,025", "4.9895")."""
    whole, _, frac = text.replace(",", "").partition(".")
    return int(whole) * MICROS + int(frac.ljust(6, "0") or 0)
